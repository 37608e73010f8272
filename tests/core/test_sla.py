from __future__ import annotations

import pytest

from proxy.core.sla import Sla, within


def test_met_when_every_judged_signal_is_at_or_below_its_target() -> None:
    sla = Sla({"ttft": 0.5, "tpot": 0.05})
    verdict = sla.verdict({"ttft": 0.5, "tpot": 0.04, "e2e": 99.0})
    assert verdict.met and verdict.signals == {"ttft": True, "tpot": True}


def test_one_missed_signal_misses_the_sla() -> None:
    verdict = Sla({"ttft": 0.5, "tpot": 0.05}).verdict({"ttft": 0.2, "tpot": 0.06})
    assert not verdict.met
    assert verdict.signals == {"ttft": True, "tpot": False}


def test_a_signal_without_a_value_is_not_judged() -> None:
    # A one-token answer has no TPOT; a non-streamed one no TTFT.
    verdict = Sla({"ttft": 0.5, "tpot": 0.05}).verdict({"ttft": 0.2, "tpot": None})
    assert verdict.met and verdict.signals["tpot"] is None
    assert within({"tpot": None}, {"tpot": 0.001})


@pytest.mark.parametrize("targets", [{"ttfb": 1.0}, {"ttft": 0.0}, {"e2e": -1.0}])
def test_rejects_unknown_signals_and_non_positive_targets(targets: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Sla(targets)


def test_miss_allowance_is_the_complement_of_the_percentile() -> None:
    assert Sla({}, 0.95).miss_allowance == pytest.approx(0.05)
