"""Admission: the one seam through which a request enters and reports its outcome.

    async with admission.acquire(priority, streamed=True) as ticket:
        ...                       # forward upstream
        ticket.first_token(now)   # as it happens (streams)
        ticket.progress(tokens, now)
        ticket.report(sample)     # what happened, once

`acquire` counts the arrival, takes a permit from the limiter within the request's
queue budget (or raises `Shed`), and the ticket carries the request's progress and
outcome back: the control loop judges it against the
SLA, and every listener (metrics, the capacity alert, a scenario's recorder) hears
the same events. The server and the scenario harness both go through here, so
neither re-implements any of it. The permit is released by construction when the
block ends, however it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType

from proxy.control import ControlLoop, Tick
from proxy.core.outcome import Flight, Sample
from proxy.core.sla import Verdict
from proxy.errors import Shed, ShedReason
from proxy.limiter import Limiter, Permit, PermitEntry, Priority


class Listener:
    """Admission and tick events; every hook is a no-op until a subscriber overrides it."""

    def arrived(self, priority: Priority) -> None:
        """A request asked for admission."""

    def shed(self, priority: Priority, reason: ShedReason) -> None:
        """It was refused (429)."""

    def admitted(self, priority: Priority, queued: float) -> None:
        """It got a permit after `queued` seconds in the queue."""

    def abandoned(self, priority: Priority) -> None:
        """Its client went away while it was queued."""

    def finished(self, sample: Sample, verdict: Verdict | None) -> None:
        """An admitted request ended; `verdict` is None when it did not succeed."""

    def ticked(self, tick: Tick) -> None:
        """The control loop decided."""


class Ticket:
    """One admitted request: its permit, and the channel for its progress and outcome.
    Times passed in are on the admission's clock."""

    __slots__ = ("_admission", "_reported", "flight", "permit")

    def __init__(self, admission: Admission, permit: Permit, streamed: bool) -> None:
        self._admission = admission
        self.permit = permit
        self.flight: Flight = admission.control.admit(permit.epoch, streamed)
        self._reported = False

    @property
    def priority(self) -> Priority:
        return self.permit.priority

    @property
    def epoch(self) -> int:
        return self.permit.epoch

    @property
    def queued_seconds(self) -> float:
        return self.permit.queued_seconds

    def first_token(self, now: float) -> None:
        self._admission.control.first_token(self.flight, now)

    def progress(self, tokens: int, now: float) -> None:
        self._admission.control.progress(self.flight, tokens, now)

    def report(self, sample: Sample) -> None:
        """What the request produced; only the first report counts."""
        if self._reported:
            return
        self._reported = True
        admission = self._admission
        verdict = admission.control.observe(sample, self.flight)
        for listener in admission.listeners:
            listener.finished(sample, verdict)

    def retract(self, sample: Sample) -> None:
        """This attempt failed before anything went upstream and the request goes on
        to another pool member: its member's control loop hears the failure, the
        listeners do not (one client request has one outcome)."""
        if self._reported:
            return
        self._reported = True
        self._admission.control.observe(sample, self.flight)

    def close(self) -> None:
        if not self._reported:
            self._reported = True
            self._admission.control.forget(self.flight)


class _Entry:
    """`async with admission.acquire(...)`: the ticket for the block's duration."""

    __slots__ = ("_admission", "_inner", "_priority", "_streamed", "_ticket")

    def __init__(
        self, admission: Admission, priority: Priority, timeout: float, streamed: bool
    ) -> None:
        self._admission = admission
        self._priority = priority
        self._streamed = streamed
        self._inner = admission.limiter.acquire(priority, timeout)
        self._ticket: Ticket | None = None

    async def __aenter__(self) -> Ticket:
        admission = self._admission
        permit = await enter_told(self._inner, self._priority, admission.listeners)
        self._ticket = Ticket(admission, permit, self._streamed)
        return self._ticket

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ticket is not None:
            self._ticket.close()
        await self._inner.__aexit__(exc_type, exc, tb)


class Admission:
    def __init__(self, limiter: Limiter, control: ControlLoop) -> None:
        self.limiter = limiter
        self.control = control
        self.listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def acquire(
        self, priority: Priority, timeout: float | None = None, *, streamed: bool = False
    ) -> _Entry:
        """Admission for one request. Its queue deadline is `timeout` seconds from now
        when the client named one, else the budget its SLA targets leave
        (`ControlLoop.queue_budget`)."""
        deadline = self.control.queue_budget if timeout is None else timeout
        return _Entry(self, priority, deadline, streamed)

    def tick(self) -> Tick:
        """One decision now (the loop in `run` calls this every interval)."""
        tick = self.control.tick()
        self._publish(tick)
        return tick

    async def run(self) -> None:
        """Decide every control interval until cancelled."""
        await self.control.run(self._publish)

    def _publish(self, tick: Tick) -> None:
        for listener in self.listeners:
            listener.ticked(tick)


__all__ = ["Admission", "Listener", "Ticket"]


async def enter_told(
    entry: PermitEntry, priority: Priority, listeners: Sequence[Listener]
) -> Permit:
    """Enter `entry` (wait for the permit), telling `listeners` the request arrived and
    then whether it was admitted, shed or abandoned while it queued."""
    for listener in listeners:
        listener.arrived(priority)
    try:
        permit = await entry.__aenter__()
    except Shed as shed:
        for listener in listeners:
            listener.shed(priority, shed.reason)
        raise
    except asyncio.CancelledError:
        for listener in listeners:
            listener.abandoned(priority)
        raise
    for listener in listeners:
        listener.admitted(priority, permit.queued_seconds)
    return permit
