"""Limiter properties over random histories of arrivals, completions, failures,
cancellations (queued, holding, and in the hand-off race), deadlines and limit
changes. Every step is checked against a model of who should hold and who should
wait; every history must end with nothing held, nothing queued, no task left."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import ShedReason
from proxy.limiter import Limiter, Priority
from tests.helpers.clients import Client
from tests.helpers.vtime import now, run_virtual, settle

_EPS = 1e-5


@dataclass(frozen=True)
class Arrive:
    priority: Priority
    timeout: float


@dataclass(frozen=True)
class Finish:
    index: int
    fail: bool


@dataclass(frozen=True)
class Cancel:
    index: int
    holding: bool


@dataclass(frozen=True)
class FinishThenCancelHead:
    """Complete a request and cancel the head waiter as soon as the permit moves."""

    index: int


@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class SetLimit:
    limit: int


Op = Arrive | Finish | Cancel | FinishThenCancelHead | Advance | SetLimit

_ops = st.one_of(
    st.builds(Arrive, st.sampled_from(Priority), st.sampled_from([0.5, 1.0, 3.0, 1000.0])),
    st.builds(Arrive, st.sampled_from(Priority), st.sampled_from([0.5, 1.0, 3.0, 1000.0])),
    st.builds(Finish, st.integers(0, 7), st.booleans()),
    st.builds(Cancel, st.integers(0, 7), st.booleans()),
    st.builds(FinishThenCancelHead, st.integers(0, 7)),
    st.builds(Advance, st.sampled_from([0.25, 1.0, 2.5])),
    st.builds(SetLimit, st.integers(1, 4)),
)


def _key(client: Client) -> tuple[int, int]:
    """Admission order: class first, then arrival."""
    return (client.priority.rank, client.seq)


class _History:
    def __init__(self, limit: int, queue_size: int) -> None:
        self.limiter = Limiter(limit, queue_size, clock=now, rate_time_constant=5.0)
        self.clients: list[Client] = []
        self.log: list[Client] = []

    def waiting(self) -> list[Client]:
        return sorted((c for c in self.clients if c.waiting), key=_key)

    def holding(self) -> list[Client]:
        return [c for c in self.clients if c.holding]

    async def apply(self, op: Op) -> None:
        if isinstance(op, Arrive):
            client = Client(
                self.limiter, op.priority, op.timeout, log=self.log, seq=len(self.clients)
            )
            self.clients.append(client)
        elif isinstance(op, Finish) and self.holding():
            holders = self.holding()
            holders[op.index % len(holders)].finish(fail=op.fail)
        elif isinstance(op, Cancel):
            pool = self.holding() if op.holding else self.waiting()
            if pool:
                pool[op.index % len(pool)].task.cancel()
        elif isinstance(op, FinishThenCancelHead) and self.holding() and self.waiting():
            holders, head = self.holding(), self.waiting()[0]
            holder = holders[op.index % len(holders)]
            holder.finish()
            for _ in range(100):
                if holder.task.done():
                    break
                await asyncio.sleep(0)
            head.task.cancel()
        elif isinstance(op, Advance):
            await asyncio.sleep(op.seconds)
        elif isinstance(op, SetLimit):
            self.limiter.set_limit(op.limit)
        await settle()

    async def step(self, op: Op) -> None:
        limiter = self.limiter
        waiting_before = self.waiting()
        inflight_before, logged_before = limiter.inflight, len(self.log)
        await self.apply(op)
        waiting_after = self.waiting()
        admitted = self.log[logged_before:]

        # Bookkeeping matches reality: nothing leaked, nothing double-counted.
        assert limiter.inflight == len(self.holding())
        assert limiter.queued == len(waiting_after) <= limiter.queue_size
        # Admissions never take in-flight above the limit; a lower limit only waits.
        assert limiter.inflight <= max(limiter.limit, inflight_before)
        if admitted:
            assert limiter.inflight <= limiter.limit
        # Order: whoever left the queue had no one still waiting ahead of it, and a
        # batch admitted together went in class order, FIFO within a class.
        from_queue = [c for c in admitted if c in waiting_before]
        assert from_queue == sorted(from_queue, key=_key)
        for client in from_queue:
            assert all(_key(w) > _key(client) for w in waiting_after)
        # Deadlines: nobody waits past theirs, nobody is timed out early.
        t = now()
        for client in waiting_after:
            assert t - client.arrived_at < client.timeout + _EPS
        for client in self.clients:
            if client.reason is ShedReason.QUEUE_TIMEOUT:
                assert t - client.arrived_at >= client.timeout - _EPS
        if isinstance(op, Arrive):
            self._check_displacement(waiting_before)

    def _check_displacement(self, waiting_before: list[Client]) -> None:
        arrival = self.clients[-1]
        displaced = [c for c in waiting_before if c.reason is ShedReason.DISPLACED]
        assert len(displaced) <= 1
        if displaced:
            # The newest of the lowest class, and lower than the arrival.
            (victim,) = displaced
            lowest = max(c.priority.rank for c in waiting_before)
            newest_lowest = max(
                (c for c in waiting_before if c.priority.rank == lowest), key=lambda c: c.seq
            )
            assert victim is newest_lowest and victim.priority.rank > arrival.priority.rank
        if arrival.reason is ShedReason.EXPECTED_WAIT:
            assert not displaced
        if arrival.reason is ShedReason.QUEUE_FULL:
            assert len(waiting_before) >= self.limiter.queue_size
            assert all(c.priority.rank <= arrival.priority.rank for c in waiting_before)

    async def drain(self) -> None:
        """Finish everyone who holds until nobody holds or waits."""
        self.limiter.set_limit(max(self.limiter.limit, 1))
        for _ in range(len(self.clients) + 2):
            if not self.holding() and not self.waiting():
                break
            for client in self.holding():
                client.finish()
            await settle()
        assert all(c.task.done() for c in self.clients)
        assert (self.limiter.inflight, self.limiter.queued) == (0, 0)
        assert self.limiter.take_peak_inflight() >= 0


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 3),
    queue_size=st.integers(0, 4),
    ops=st.lists(_ops, min_size=10, max_size=40),
)
def test_random_histories_keep_every_invariant(limit: int, queue_size: int, ops: list[Op]) -> None:
    async def scenario() -> None:
        history = _History(limit, queue_size)
        for op in ops:
            await history.step(op)
        await history.drain()

    run_virtual(scenario)
