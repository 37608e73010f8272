"""Outlier ejection of one pool member: exact, on passed-in times."""

from __future__ import annotations

import pytest

from proxy.core.ejection import Ejection, EjectionPolicy, Event, Reason


def ejection(**kwargs: float) -> Ejection:
    return Ejection(EjectionPolicy(**kwargs))  # type: ignore[arg-type]


def test_consecutive_connect_failures_eject_and_an_answer_resets_the_count() -> None:
    e = ejection(after=3)
    assert e.record(Event.CONNECT, 0.0, others_up=True) is None
    assert e.record(Event.CONNECT, 0.1, others_up=True) is None
    assert e.record(Event.ANSWERED, 0.2, others_up=True) is None
    assert e.record(Event.CONNECT, 0.3, others_up=True) is None
    assert e.record(Event.CLOSED, 0.4, others_up=True) is None
    assert e.up
    assert e.record(Event.CONNECT, 0.5, others_up=True) is Reason.CONNECT
    assert not e.up and e.until == pytest.approx(5.5)


def test_accept_then_close_is_named_as_such() -> None:
    e = ejection(after=2)
    e.record(Event.CONNECT, 0.0, others_up=False)
    assert e.record(Event.CLOSED, 0.1, others_up=False) is Reason.CLOSED


def test_a_burst_of_5xx_ejects_only_while_another_member_serves() -> None:
    alone, pooled = ejection(server_errors=3), ejection(server_errors=3)
    for t in range(5):
        assert alone.record(Event.SERVER_ERROR, t, others_up=False) is None
    assert alone.up
    reasons = [pooled.record(Event.SERVER_ERROR, t, others_up=True) for t in range(3)]
    assert reasons == [None, None, Reason.SERVER_ERRORS]


def test_5xx_ejection_can_be_switched_off() -> None:
    e = ejection(server_errors=0)
    assert all(e.record(Event.SERVER_ERROR, t, others_up=True) is None for t in range(50))


def test_a_4xx_or_2xx_answer_breaks_a_5xx_burst() -> None:
    e = ejection(server_errors=2)
    e.record(Event.SERVER_ERROR, 0, others_up=True)
    e.record(Event.ANSWERED, 1, others_up=True)
    assert e.record(Event.SERVER_ERROR, 2, others_up=True) is None


def test_back_off_holds_a_good_probe_while_others_serve_and_doubles_per_repeat() -> None:
    e = ejection(after=1, base=2.0, forgive=100.0)
    e.record(Event.CONNECT, 10.0, others_up=True)
    assert not e.probed(True, 11.0, others_up=True)  # back-off not over
    assert e.remaining(11.0) == pytest.approx(1.0)
    assert not e.probed(False, 12.5, others_up=True)  # over, but the probe failed
    assert e.remaining(12.5) == 0.0
    assert e.probed(True, 13.0, others_up=True)
    assert e.up and e.remaining(13.0) is None
    e.record(Event.CONNECT, 20.0, others_up=True)  # again, soon after: 4 s
    assert e.until == pytest.approx(24.0)
    e.probed(True, 24.0, others_up=True)
    e.record(Event.CONNECT, 30.0, others_up=True)
    assert e.until == pytest.approx(38.0)


def test_the_doubling_is_capped_and_forgotten_after_a_healthy_stretch() -> None:
    e = ejection(after=1, base=1.0, max_doublings=2, forgive=50.0)
    t = 0.0
    for _ in range(5):
        e.record(Event.CONNECT, t, others_up=True)
        assert e.until is not None
        t = e.until
        assert e.probed(True, t, others_up=True)
    e.record(Event.CONNECT, t, others_up=True)
    assert e.until == pytest.approx(t + 4.0)  # 2 doublings at most
    e.probed(True, t + 4.0, others_up=True)
    e.record(Event.CONNECT, t + 100.0, others_up=True)  # 96 s healthy: forgiven
    assert e.until == pytest.approx(t + 101.0)


def test_alone_the_first_good_probe_brings_it_back_at_once() -> None:
    e = ejection(after=1, base=30.0)
    e.record(Event.CONNECT, 0.0, others_up=False)
    assert e.probed(True, 0.5, others_up=False)


def test_outcomes_while_out_change_nothing() -> None:
    e = ejection(after=1)
    e.record(Event.CONNECT, 0.0, others_up=True)
    until = e.until
    assert e.record(Event.CONNECT, 1.0, others_up=True) is None
    assert e.record(Event.ANSWERED, 1.0, others_up=True) is None
    assert e.until == until and not e.up


def test_the_policy_is_validated() -> None:
    with pytest.raises(ValueError):
        EjectionPolicy(after=0)
    with pytest.raises(ValueError):
        EjectionPolicy(base=0)
