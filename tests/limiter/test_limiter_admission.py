"""Limiter: who gets a permit, in which order, and that every permit comes back."""

from __future__ import annotations

import asyncio

import pytest

from proxy.limiter import Limiter, Priority
from tests.helpers.clients import Client, arrivals
from tests.helpers.vtime import now, settle, virtual_time

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


def _limiter(limit: int = 1, queue_size: int = 10) -> Limiter:
    return Limiter(limit, queue_size, clock=now)


async def _finish_in_turn(clients: list[Client]) -> None:
    """Finish whoever holds a permit until everyone is done."""
    for _ in range(len(clients) + 1):
        for client in clients:
            if client.holding:
                client.finish()
        await settle()
    assert all(client.task.done() for client in clients)


@virtual_time
async def test_admits_at_once_under_limit() -> None:
    limiter = _limiter(limit=2)
    clients = arrivals(limiter, [NORMAL, LOW])
    await settle()
    assert all(c.holding for c in clients)
    assert [c.permit.queued_seconds for c in clients if c.permit] == [0.0, 0.0]
    assert (limiter.inflight, limiter.queued) == (2, 0)
    await _finish_in_turn(clients)


@virtual_time
async def test_queues_at_limit() -> None:
    limiter = _limiter(limit=1)
    first, second = arrivals(limiter, [NORMAL, LOW])
    await settle()
    assert first.holding and second.waiting
    assert (limiter.inflight, limiter.queued) == (1, 1)
    assert limiter.queued_by_priority() == {HIGH: 0, NORMAL: 0, LOW: 1}
    await _finish_in_turn([first, second])


@virtual_time
async def test_fifo_within_a_class() -> None:
    limiter = _limiter(limit=1)
    log: list[Client] = []
    clients = arrivals(limiter, [NORMAL] * 5, log=log)
    await _finish_in_turn(clients)
    assert log == clients


@virtual_time
async def test_higher_class_is_admitted_first() -> None:
    limiter = _limiter(limit=1)
    log: list[Client] = []
    holder, low, normal, high, high2 = arrivals(limiter, [LOW, LOW, NORMAL, HIGH, HIGH], log=log)
    await _finish_in_turn([holder, low, normal, high, high2])
    assert log == [holder, high, high2, normal, low]


@virtual_time
async def test_new_arrival_does_not_barge_past_a_permit_in_transit() -> None:
    limiter = _limiter(limit=1)
    admission = limiter.acquire(HIGH, 10)
    await admission.__aenter__()
    waiter = Client(limiter, NORMAL)
    await settle()
    await admission.__aexit__(None, None, None)
    # The permit now belongs to the waiter although it has not resumed yet.
    assert (limiter.inflight, limiter.queued) == (1, 0)
    newcomer = Client(limiter, HIGH)
    await settle()
    assert waiter.holding and newcomer.waiting
    await _finish_in_turn([waiter, newcomer])


@virtual_time
async def test_lower_limit_does_not_stop_running_requests() -> None:
    limiter = _limiter(limit=3)
    running = arrivals(limiter, [NORMAL] * 3)
    await settle()
    limiter.set_limit(1)
    late = Client(limiter, HIGH)
    await settle()
    assert all(c.holding for c in running) and late.waiting
    running[0].finish()
    running[1].finish()
    await settle()
    # Two left, still above the new limit of one: nobody new gets in.
    assert (limiter.inflight, limiter.queued) == (1, 1)
    assert running[2].holding and late.waiting
    await _finish_in_turn([*running, late])


@virtual_time
async def test_higher_limit_admits_waiters_at_once_highest_class_first() -> None:
    limiter = _limiter(limit=1)
    holder, low, high, normal = arrivals(limiter, [NORMAL, LOW, HIGH, NORMAL])
    await settle()
    limiter.set_limit(3)
    await settle()
    assert holder.holding and high.holding and normal.holding and low.waiting
    await _finish_in_turn([holder, low, high, normal])


@virtual_time
async def test_permit_released_when_the_handler_raises() -> None:
    limiter = _limiter(limit=1)
    failing, waiter = arrivals(limiter, [NORMAL, NORMAL])
    await settle()
    failing.finish(fail=True)
    await settle()
    assert failing.failed and waiter.holding and limiter.inflight == 1
    await _finish_in_turn([waiter])
    assert limiter.inflight == 0


@virtual_time
async def test_permit_released_when_the_holder_is_cancelled() -> None:
    limiter = _limiter(limit=1)
    holder, waiter = arrivals(limiter, [NORMAL, NORMAL])
    await settle()
    holder.task.cancel()
    await settle()
    assert holder.task.cancelled() and waiter.holding and limiter.inflight == 1
    await _finish_in_turn([waiter])
    assert limiter.inflight == 0


@virtual_time
async def test_cancelled_waiter_leaves_the_queue_at_once() -> None:
    limiter = _limiter(limit=1, queue_size=1)
    holder, leaver = arrivals(limiter, [NORMAL, NORMAL])
    await settle()
    leaver.task.cancel()
    await settle()
    assert limiter.queued == 0
    # Its place is free for the next arrival, and the holder's permit goes to it.
    successor = Client(limiter, NORMAL)
    await settle()
    assert successor.waiting and successor.shed is None
    await _finish_in_turn([holder, successor])
    assert successor.served and limiter.inflight == 0


@virtual_time
async def test_permit_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    limiter = _limiter(limit=1)
    admission = limiter.acquire(NORMAL, 10)
    await admission.__aenter__()
    doomed, next_in_line = arrivals(limiter, [NORMAL, NORMAL])
    await settle()
    await admission.__aexit__(None, None, None)
    # The permit is in transit to `doomed`; its client goes away before it resumes.
    doomed.task.cancel()
    await settle()
    assert doomed.task.cancelled() and doomed.permit is None
    assert next_in_line.holding and limiter.inflight == 1
    await _finish_in_turn([next_in_line])
    assert (limiter.inflight, limiter.queued) == (0, 0)


@virtual_time
async def test_peak_inflight_is_the_most_held_since_the_last_call() -> None:
    limiter = _limiter(limit=5)
    clients = arrivals(limiter, [NORMAL] * 4)
    await settle()
    for client in clients[:3]:
        client.finish()
    await settle()
    assert limiter.take_peak_inflight() == 4
    # Starts over from what is held now, not from zero.
    assert limiter.take_peak_inflight() == 1
    await _finish_in_turn(clients)
    assert limiter.take_peak_inflight() == 1
    assert limiter.take_peak_inflight() == 0


@virtual_time
async def test_epoch_bumps_on_every_limit_change_and_tags_permits() -> None:
    limiter = _limiter(limit=2)
    limiter.set_limit(2)
    assert limiter.epoch == 0
    limiter.set_limit(3)
    limiter.set_limit(1)
    assert limiter.epoch == 2
    (client,) = arrivals(limiter, [NORMAL])
    await settle()
    assert client.permit is not None and client.permit.epoch == 2
    await _finish_in_turn([client])


@virtual_time
async def test_permit_reports_time_spent_queued() -> None:
    limiter = _limiter(limit=1)
    holder, waiter = arrivals(limiter, [NORMAL, HIGH])
    await settle()
    await asyncio.sleep(2.5)
    holder.finish()
    await settle()
    assert waiter.permit is not None
    assert waiter.permit.priority is HIGH
    assert waiter.permit.queued_seconds == pytest.approx(2.5, abs=1e-3)
    await _finish_in_turn([waiter])


@virtual_time
async def test_an_admission_cannot_be_entered_twice() -> None:
    limiter = _limiter(limit=2)
    admission = limiter.acquire(NORMAL, 1)
    async with admission:
        with pytest.raises(RuntimeError):
            await admission.__aenter__()
    assert limiter.inflight == 0


@pytest.mark.parametrize(("limit", "queue_size"), [(0, 1), (1, -1)])
def test_rejects_nonsense_sizes(limit: int, queue_size: int) -> None:
    with pytest.raises(ValueError):
        Limiter(limit, queue_size)


def test_rejects_a_limit_below_one() -> None:
    limiter = Limiter(2, 0)
    with pytest.raises(ValueError):
        limiter.set_limit(0)
    assert (limiter.limit, limiter.epoch) == (2, 0)
