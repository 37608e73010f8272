"""The limiter: permits up to a concurrency limit, a bounded priority queue with
deadlines, and shedding with a Retry-After the client can act on (level 1).

Invariants, each held by construction rather than by care at call sites:
- A permit is only ever released by `PermitEntry.__aexit__` or, when its owner was
  cancelled between being handed the permit and resuming, by that owner's own
  `except` path, which hands it on. No callback can skip a release.
- A permit is counted in `inflight` the moment it is handed to a waiter, so a
  permit in transit can neither be lost nor let a newcomer barge past the queue.
- After every operation either the queue is empty or `inflight >= limit`, so
  "admit at once" only needs `inflight < limit and nothing queued`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from proxy.core.drain import DrainRate
from proxy.errors import Shed, ShedReason


class Priority(StrEnum):
    """Admission classes; a higher class is always admitted first."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most important class."""
        return _PRIORITY_RANK[self]

    @classmethod
    def parse(cls, value: str | None) -> Priority:
        """Unknown or missing values are `normal`, never an error."""
        if value is None:
            return cls.NORMAL
        try:
            return cls(value.strip().lower())
        except ValueError:
            return cls.NORMAL


_PRIORITY_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}

# Most important class first: the order in which queues are served.
_CLASSES = tuple(sorted(Priority, key=lambda p: p.rank))
RETRY_AFTER_MIN = 1.0
RETRY_AFTER_MAX = 60.0


@dataclass(frozen=True, slots=True)
class Permit:
    priority: Priority
    epoch: int  # the limiter epoch it was admitted under
    queued_seconds: float  # 0.0 when admitted at once


class _Waiter:
    __slots__ = ("arrival", "future", "priority")

    def __init__(self, priority: Priority, arrival: float, future: asyncio.Future[Permit]) -> None:
        self.priority = priority
        self.arrival = arrival
        self.future = future


class PermitEntry:
    """`async with limiter.acquire(priority, timeout) as permit:` — raises `Shed` when
    refused; once entered, the permit is released on every way out of the block."""

    __slots__ = ("_entered", "_limiter", "_permit", "_priority", "_timeout")

    def __init__(self, limiter: Limiter, priority: Priority, timeout: float) -> None:
        self._limiter = limiter
        self._priority = priority
        self._timeout = timeout
        self._permit: Permit | None = None
        self._entered = False

    async def __aenter__(self) -> Permit:
        if self._entered:
            raise RuntimeError("a PermitEntry can be entered only once")
        self._entered = True
        # No await between getting the permit and storing it: nothing can interrupt.
        self._permit = await self._limiter._admit(self._priority, self._timeout)
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, self._permit = self._permit, None
        if permit is not None:
            self._limiter._release(completed=True)


class Limiter:
    """Concurrency limit with a bounded priority queue in front of it.

    `clock` measures queueing time and the drain rate; queue deadlines are timers on
    the running event loop, so the clock should be the loop's (`time.monotonic` for
    asyncio and uvloop, `loop.time` under a virtual-time loop).
    """

    def __init__(
        self,
        limit: int,
        queue_size: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        rate_time_constant: float = 10.0,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        if not rate_time_constant > 0:
            raise ValueError(f"rate_time_constant must be > 0, got {rate_time_constant}")
        self._limit = limit
        self._queue_size = queue_size
        self._clock = clock
        self._inflight = 0
        self._peak = 0
        self._epoch = 0
        # OrderedDict: O(1) append, pop from either end, and removal of a cancelled waiter.
        self._queues: dict[Priority, OrderedDict[_Waiter, None]] = {
            cls: OrderedDict() for cls in _CLASSES
        }
        self._rate = DrainRate(rate_time_constant)

    # --- state ----------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def queued(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    @property
    def queue_size(self) -> int:
        return self._queue_size

    @property
    def epoch(self) -> int:
        return self._epoch

    def queued_by_priority(self) -> dict[Priority, int]:
        return {cls: len(queue) for cls, queue in self._queues.items()}

    def take_peak_inflight(self) -> int:
        """Most permits held at once since the last call; then starts over from now."""
        peak, self._peak = self._peak, self._inflight
        return peak

    def completion_rate(self) -> float | None:
        """Permits released per second while the limit is in use (the rate at which
        the queue advances), scaled to the current limit when it has grown since (more
        permits turn over proportionally faster); None until a few releases were seen."""
        rate = self._rate.rate(self._clock())
        measured_at = self._rate.limit()
        if rate is None or measured_at is None:
            return rate
        return rate * max(1.0, self._limit / measured_at)

    def expected_drain_seconds(self) -> float | None:
        """Queue length / completion rate: 0 when nothing waits, None when unknown."""
        queued = self.queued
        if queued == 0:
            return 0.0
        rate = self.completion_rate()
        if rate is None:
            return None
        return queued / rate if rate > 0 else math.inf

    def retry_after(self) -> float:
        """Seconds a shed client should wait: the drain time, kept within a sane range."""
        drain = self.expected_drain_seconds()
        if drain is None:
            return RETRY_AFTER_MIN
        return min(RETRY_AFTER_MAX, max(RETRY_AFTER_MIN, drain))

    # --- control --------------------------------------------------------------
    def set_limit(self, limit: int) -> None:
        """Lowering never touches running requests; raising admits waiters at once."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if limit == self._limit:
            return
        self._limit = limit
        self._epoch += 1
        self._pump()
        self._rate.set_saturated(self._clock(), self._inflight >= self._limit)

    def acquire(self, priority: Priority, timeout: float) -> PermitEntry:
        """A permit for one request; `timeout` seconds from now is its queue deadline."""
        return PermitEntry(self, priority, timeout)

    def hold(self, priority: Priority, queued_seconds: float = 0.0) -> Permit:
        """A permit now, whatever the limit: for a pool member, whose admission the
        pool's own queue decided (`proxy.pool`). Its owner gives it back with `unhold`."""
        permit = self._grant(priority, self._clock(), self._clock())
        return Permit(permit.priority, permit.epoch, queued_seconds)

    def unhold(self, *, completed: bool = True) -> None:
        """Give back a permit taken with `hold`."""
        self._release(completed=completed)

    # --- admission ------------------------------------------------------------
    async def _admit(self, priority: Priority, patience: float) -> Permit:
        now = self._clock()
        if self._inflight < self._limit and self.queued == 0:
            return self._grant(priority, now, now)
        self._make_room(priority, patience)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(priority, now, loop.create_future())
        self._queues[priority][waiter] = None
        deadline = loop.call_later(patience, self._evict, waiter, ShedReason.QUEUE_TIMEOUT)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._withdraw(waiter)
            raise
        finally:
            deadline.cancel()

    def _make_room(self, priority: Priority, timeout: float) -> None:
        """Raise `Shed` unless the arrival may queue; displace a victim if it must."""
        victim = None
        if self.queued >= self._queue_size:
            victim = self._newest_below(priority)
            if victim is None:
                raise self._shed(ShedReason.QUEUE_FULL)
        if not timeout > 0:
            raise self._shed(ShedReason.QUEUE_TIMEOUT)
        # Checked before displacing: never evict someone for a request bound to fail.
        rate = self.completion_rate()
        if rate is not None:
            # Releases needed before it gets in: everyone ahead of it, itself, and any
            # excess still running above a limit that was just lowered.
            ahead = sum(len(self._queues[c]) for c in _CLASSES if c.rank <= priority.rank)
            releases = ahead + 1 + max(0, self._inflight - self._limit)
            if rate <= 0 or releases / rate > timeout:
                raise self._shed(ShedReason.EXPECTED_WAIT)
        if victim is not None:
            self._evict(victim, ShedReason.DISPLACED)

    def _newest_below(self, priority: Priority) -> _Waiter | None:
        """The newest live waiter of the lowest class below `priority`, if any."""
        for cls in reversed(_CLASSES):
            if cls.rank <= priority.rank:
                return None
            queue = self._queues[cls]
            while queue:
                waiter = next(reversed(queue))
                if not waiter.future.done():
                    return waiter
                del queue[waiter]  # cancelled; its task has not run its cleanup yet
        return None

    def _evict(self, waiter: _Waiter, reason: ShedReason) -> None:
        if waiter.future.done():
            return
        self._queues[waiter.priority].pop(waiter, None)
        waiter.future.set_exception(self._shed(reason))

    def _withdraw(self, waiter: _Waiter) -> None:
        """Cleanup of a waiter whose task was cancelled, whatever state it was in."""
        self._queues[waiter.priority].pop(waiter, None)
        future = waiter.future
        if not future.done():
            future.cancel()
        elif not future.cancelled() and future.exception() is None:
            # Handed a permit but cancelled before it could resume: pass the permit on.
            self._release(completed=False)

    def _grant(self, priority: Priority, arrival: float, now: float) -> Permit:
        self._inflight += 1
        self._peak = max(self._peak, self._inflight)
        self._rate.set_saturated(now, self._inflight >= self._limit)
        return Permit(priority, self._epoch, now - arrival)

    def _release(self, *, completed: bool) -> None:
        now = self._clock()
        if completed and self._inflight >= self._limit:
            self._rate.record_release(now, self._limit)
        self._inflight -= 1
        self._pump()
        self._rate.set_saturated(now, self._inflight >= self._limit)

    def _pump(self) -> None:
        """Hand free permits to the head waiters, most important class first."""
        now = self._clock()
        for cls in _CLASSES:
            queue = self._queues[cls]
            while queue and self._inflight < self._limit:
                waiter, _ = queue.popitem(last=False)
                if not waiter.future.done():
                    waiter.future.set_result(self._grant(cls, waiter.arrival, now))

    def _shed(self, reason: ShedReason) -> Shed:
        return Shed(reason, self.retry_after())
