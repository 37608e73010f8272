"""Limiter: when a request is refused, why, and what Retry-After it is told."""

from __future__ import annotations

import asyncio

import pytest

from proxy.errors import ShedReason
from proxy.limiter import RETRY_AFTER_MAX, RETRY_AFTER_MIN, Limiter, Priority
from tests.helpers.clients import Client, arrivals
from tests.helpers.vtime import now, settle, virtual_time

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


async def _release_all(limiter: Limiter, clients: list[Client]) -> None:
    for _ in range(len(clients) + 1):
        for client in clients:
            if client.holding:
                client.finish()
        await settle()
    assert all(client.task.done() for client in clients)
    assert (limiter.inflight, limiter.queued) == (0, 0)


async def _build_rate(limiter: Limiter, releases: int, hold: float) -> None:
    """Serve `releases` requests back to back at a full limit of one, `hold` s each."""
    assert limiter.limit == 1
    for _ in range(releases):
        (client,) = arrivals(limiter, [NORMAL])
        await settle()
        await asyncio.sleep(hold)
        client.finish()
        await settle()


@virtual_time
async def test_sheds_queue_full_when_no_one_lower_waits() -> None:
    limiter = Limiter(1, 2, clock=now)
    clients = arrivals(limiter, [NORMAL, NORMAL, HIGH, NORMAL])
    await settle()
    assert clients[3].reason is ShedReason.QUEUE_FULL
    assert clients[1].waiting and clients[2].waiting
    await _release_all(limiter, clients)


@virtual_time
async def test_without_a_queue_sheds_at_once_at_the_limit() -> None:
    limiter = Limiter(1, 0, clock=now)
    holder, refused = arrivals(limiter, [LOW, HIGH])
    await settle()
    assert holder.holding and refused.reason is ShedReason.QUEUE_FULL
    await _release_all(limiter, [holder, refused])


@virtual_time
async def test_higher_class_displaces_the_newest_of_the_lowest_class() -> None:
    limiter = Limiter(1, 3, clock=now)
    holder, low_old, low_new, normal = arrivals(limiter, [NORMAL, LOW, LOW, NORMAL])
    await settle()
    (high,) = arrivals(limiter, [HIGH])
    await settle()
    assert low_new.reason is ShedReason.DISPLACED
    assert low_old.waiting and normal.waiting and high.waiting
    (second_normal,) = arrivals(limiter, [NORMAL])
    await settle()
    assert low_old.reason is ShedReason.DISPLACED
    (second_high,) = arrivals(limiter, [HIGH])
    await settle()
    # No low left: the newest normal goes.
    assert second_normal.reason is ShedReason.DISPLACED and normal.waiting
    assert limiter.queued_by_priority() == {HIGH: 2, NORMAL: 1, LOW: 0}
    await _release_all(limiter, [holder, low_old, low_new, normal, high, second_high])


@virtual_time
async def test_sheds_queue_timeout_when_the_deadline_passes_while_queued() -> None:
    limiter = Limiter(1, 5, clock=now)
    holder = Client(limiter, NORMAL)
    waiter = Client(limiter, NORMAL, timeout=5.0)
    await settle()
    await asyncio.sleep(4.9)
    assert waiter.waiting
    await asyncio.sleep(0.2)
    assert waiter.reason is ShedReason.QUEUE_TIMEOUT
    assert limiter.queued == 0
    await _release_all(limiter, [holder, waiter])


@virtual_time
async def test_deadline_stops_counting_once_admitted() -> None:
    limiter = Limiter(1, 5, clock=now)
    holder = Client(limiter, NORMAL)
    waiter = Client(limiter, NORMAL, timeout=5.0)
    await settle()
    await asyncio.sleep(4.0)
    holder.finish()
    await asyncio.sleep(10.0)
    assert waiter.holding and waiter.shed is None
    await _release_all(limiter, [holder, waiter])


@virtual_time
async def test_zero_timeout_sheds_at_once_when_it_would_have_to_wait() -> None:
    limiter = Limiter(1, 5, clock=now)
    holder, impatient = arrivals(limiter, [NORMAL, NORMAL], timeout=0.0)
    await settle()
    assert holder.holding and impatient.reason is ShedReason.QUEUE_TIMEOUT
    await _release_all(limiter, [holder, impatient])


@virtual_time
async def test_completion_rate_is_unknown_before_evidence() -> None:
    limiter = Limiter(1, 5, clock=now)
    assert limiter.completion_rate() is None
    await _build_rate(limiter, releases=2, hold=1.0)
    assert limiter.completion_rate() is None
    assert limiter.retry_after() == RETRY_AFTER_MIN


@virtual_time
async def test_completion_rate_measures_releases_at_a_full_limit() -> None:
    limiter = Limiter(1, 5, clock=now, rate_time_constant=5.0)
    await _build_rate(limiter, releases=40, hold=0.5)
    assert limiter.completion_rate() == pytest.approx(2.0, rel=0.15)


@virtual_time
async def test_idle_time_does_not_lower_the_completion_rate() -> None:
    limiter = Limiter(1, 5, clock=now)
    await _build_rate(limiter, releases=10, hold=0.5)
    before = limiter.completion_rate()
    await asyncio.sleep(600)
    assert before is not None and limiter.completion_rate() == pytest.approx(before)


@virtual_time
async def test_expected_wait_beyond_the_deadline_sheds_at_once() -> None:
    limiter = Limiter(1, 10, clock=now)
    await _build_rate(limiter, releases=10, hold=1.0)
    rate = limiter.completion_rate()
    assert rate is not None and 0.8 < rate < 1.25
    waiting = arrivals(limiter, [NORMAL, NORMAL, NORMAL, LOW], timeout=100.0)
    await settle()
    # One holds; a new normal request is third in line (the low one does not count).
    doomed = Client(limiter, NORMAL, timeout=2.0)
    patient = Client(limiter, NORMAL, timeout=10.0)
    await settle()
    assert doomed.reason is ShedReason.EXPECTED_WAIT and patient.waiting
    # A high request is first in line, so the same deadline is enough.
    urgent = Client(limiter, HIGH, timeout=2.0)
    await settle()
    assert urgent.waiting
    await _release_all(limiter, [*waiting, doomed, patient, urgent])


@virtual_time
async def test_expected_wait_counts_requests_running_above_a_lowered_limit() -> None:
    limiter = Limiter(1, 10, clock=now)
    await _build_rate(limiter, releases=10, hold=1.0)
    limiter.set_limit(3)
    running = arrivals(limiter, [NORMAL] * 3)
    await settle()
    limiter.set_limit(1)
    # First in line, but two of the three must finish before anyone gets in: ~3 s.
    (doomed,) = arrivals(limiter, [HIGH], timeout=2.0)
    await settle()
    assert doomed.reason is ShedReason.EXPECTED_WAIT
    await _release_all(limiter, [*running, doomed])


@virtual_time
async def test_no_early_rejection_without_evidence() -> None:
    limiter = Limiter(1, 10, clock=now)
    clients = arrivals(limiter, [NORMAL] * 6, timeout=0.5)
    await settle()
    assert all(c.shed is None for c in clients)
    await asyncio.sleep(1.0)
    assert {c.reason for c in clients[1:]} == {ShedReason.QUEUE_TIMEOUT}
    await _release_all(limiter, clients)


@virtual_time
async def test_expected_wait_does_not_displace_anyone() -> None:
    limiter = Limiter(1, 2, clock=now)
    await _build_rate(limiter, releases=10, hold=1.0)
    holder, low_a, low_b = arrivals(limiter, [NORMAL, LOW, LOW], timeout=100.0)
    await settle()
    (doomed,) = arrivals(limiter, [HIGH], timeout=0.1)
    await settle()
    assert doomed.reason is ShedReason.EXPECTED_WAIT
    assert low_a.waiting and low_b.waiting
    await _release_all(limiter, [holder, low_a, low_b, doomed])


@virtual_time
async def test_retry_after_is_the_drain_time() -> None:
    limiter = Limiter(1, 5, clock=now)
    await _build_rate(limiter, releases=10, hold=1.0)
    clients = arrivals(limiter, [NORMAL] * 7, timeout=100.0)
    await settle()
    rate = limiter.completion_rate()
    assert rate is not None
    assert limiter.expected_drain_seconds() == pytest.approx(5 / rate)
    refused = clients[6]
    assert refused.shed is not None and refused.reason is ShedReason.QUEUE_FULL
    assert refused.shed.retry_after == pytest.approx(5 / rate)
    assert refused.shed.headers()["Retry-After"] == "5"
    await _release_all(limiter, clients)


@virtual_time
async def test_retry_after_is_clamped() -> None:
    limiter = Limiter(1, 200, clock=now)
    assert limiter.expected_drain_seconds() == 0.0
    assert limiter.retry_after() == RETRY_AFTER_MIN
    await _build_rate(limiter, releases=10, hold=1.0)
    clients = arrivals(limiter, [NORMAL] * 101, timeout=1000.0)
    await settle()
    drain = limiter.expected_drain_seconds()
    assert drain is not None and drain > RETRY_AFTER_MAX
    assert limiter.retry_after() == RETRY_AFTER_MAX
    await _release_all(limiter, clients)
