"""The control loop: evidence -> controller -> limiter, every control interval.

It knows the requests in flight (`Flight`: sent when, under which limit, first token
yet) and the finished ones (the windows), and turns both into the
controller's evidence: only requests admitted under the current limit (its epoch)
count, so one breach can never cause two decreases. It judges each finished request
against the SLA itself (`observe` returns the verdict), derives the queue budget
every tick, and hands each tick to whoever listens; it knows nothing of metrics,
alerts or HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.core.controller import Controller, Decision, Direction, Observation
from proxy.core.outcome import Flight, Outcome, Sample
from proxy.core.sla import Sla, Verdict
from proxy.core.window import SignalWindows, WindowSnapshot
from proxy.limiter import Limiter

log = logging.getLogger("sla_proxy.control")

# The signals a wait in the proxy's queue adds to, as its client sees them (a queued
# request's tokens come no slower once it runs: TPOT is not among them).
QUEUED_SIGNALS = ("ttft", "e2e")


@dataclass(frozen=True, slots=True)
class Tick:
    observation: Observation
    decision: Decision
    percentile: float

    @property
    def previous_limit(self) -> int:
        return self.observation.limit

    @property
    def direction(self) -> Direction:
        return Direction.of(self.observation.limit, self.decision.limit)

    @property
    def changed(self) -> bool:
        return self.decision.limit != self.observation.limit

    @property
    def sla_breached(self) -> bool:
        """A targeted signal's fresh value at the SLA percentile is over its target."""
        return any(
            (q := ev.quantile(self.percentile)) is not None and q > ev.target
            for ev in self.observation.signals.values()
        )


class ControlLoop:
    def __init__(
        self,
        limiter: Limiter,
        controller: Controller,
        windows: SignalWindows,
        sla: Sla,
        *,
        interval: float = 0.25,
        min_samples: int = 5,
        queue_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0 or min_samples < 1 or not queue_timeout > 0:
            raise ValueError("interval and queue_timeout must be positive, min_samples >= 1")
        self.limiter = limiter
        self.controller = controller
        self.windows = windows
        self.sla = sla
        self.interval = interval
        self.min_samples = min_samples
        self.queue_timeout = queue_timeout
        self.clock = clock
        self.last: Tick | None = None
        self.flights: dict[Flight, None] = {}  # insertion-ordered set
        self.queue_budget = queue_timeout

    # --- one request's life ---------------------------------------------------
    def admit(self, epoch: int, streamed: bool) -> Flight:
        flight = Flight(self.clock(), epoch, streamed)
        self.flights[flight] = None
        return flight

    def first_token(self, flight: Flight, now: float) -> None:
        if flight.first_at is None:
            flight.first_at = flight.last_at = now
            flight.tokens = max(flight.tokens, 1)
            self.windows.first_token(flight, now)

    def progress(self, flight: Flight, tokens: int, now: float) -> None:
        """Content events (tokens) a stream has had so far: its TPOT so far."""
        if tokens > flight.tokens:
            flight.tokens, flight.last_at = tokens, now

    def observe(self, sample: Sample, flight: Flight | None = None) -> Verdict | None:
        """Record one finished request; its verdict against the SLA, None when it did
        not succeed (a failure is not served, so it is not judged on latency)."""
        if flight is not None:
            self.flights.pop(flight, None)
        verdict = self.sla.verdict(sample.values()) if sample.outcome is Outcome.SUCCESS else None
        met = verdict is not None and verdict.met
        self.windows.observe(sample, self.clock(), flight, met)
        return verdict

    def forget(self, flight: Flight) -> None:
        """The request ended without an outcome to report."""
        self.flights.pop(flight, None)

    # --- decisions ------------------------------------------------------------
    def tick(self) -> Tick:
        now = self.clock()
        limiter = self.limiter
        previous, epoch = limiter.limit, limiter.epoch
        counts = self.windows.outcome_counts(now, epoch)
        observation = Observation(
            now=now,
            limit=previous,
            inflight=limiter.inflight,
            peak_inflight=limiter.take_peak_inflight(),
            queued=limiter.queued,
            signals=self.windows.evidence(now, epoch, self.sla.targets, self.flights),
            completed=counts.completed,
            overloaded=counts.overload,
            good_rate=counts.rate(now),
        )
        decision = self.controller.decide(observation)
        if decision.limit != previous:
            limiter.set_limit(decision.limit)
            log.info(
                "limit %d -> %d (%s): %s", previous, decision.limit, decision.cause, decision.reason
            )
        else:
            log.debug("limit %d held (%s): %s", previous, decision.cause, decision.reason)
        self.queue_budget = self._queue_budget(now)
        self.last = Tick(observation, decision, self.sla.percentile)
        return self.last

    def _queue_budget(self, now: float) -> float:
        """How long a request may wait for a permit and still meet its targets as its
        client sees them: each queued signal's target minus what the upstream takes
        at the SLA percentile now (0 until measured), at most `queue_timeout`. With a
        wait within it, the requests that get their answer within that percentile
        still meet the target, so the client's percentile does too."""
        budget = self.queue_timeout
        for name in QUEUED_SIGNALS:
            target = self.sla.targets.get(name)
            if target is None:
                continue
            snap = self.windows.snapshot(name, now, 0, self.min_samples)
            service = snap.percentile(self.sla.percentile) or 0.0
            budget = min(budget, max(0.0, target - service))
        return budget

    async def run(self, on_tick: Callable[[Tick], None]) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                on_tick(self.tick())
            except Exception:  # a reporting bug must not stop admission control
                log.exception("control tick failed")

    def window_snapshots(self) -> dict[str, WindowSnapshot]:
        """All recent samples (any epoch): what operators see, not what decides."""
        return self.windows.snapshots(self.clock(), 0, self.min_samples)


__all__ = ["ControlLoop", "Tick"]
