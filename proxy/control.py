"""The control loop: latency window -> controller -> limiter, every control interval.

Samples are tagged with the limiter epoch they were admitted under; after the limit
moves (a new epoch) only samples admitted since then count, so one breach can never
cause two decreases. The loop judges each finished request against the SLA itself
(`observe` returns the verdict) and hands each tick to whoever listens; it knows
nothing of metrics, alerts or HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.core.controller import Controller, Decision, Direction, Observation
from proxy.core.outcome import Outcome, Sample
from proxy.core.sla import Sla, Verdict
from proxy.core.window import SignalWindows, WindowSnapshot
from proxy.limiter import Limiter

log = logging.getLogger("sla_proxy.control")


@dataclass(frozen=True, slots=True)
class Tick:
    observation: Observation
    decision: Decision

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
        """A targeted signal's fresh percentile is over its target."""
        obs = self.observation
        return any(
            value is not None and value > obs.targets[name]
            for name, value in obs.percentiles.items()
            if name in obs.targets
        )


class ControlLoop:
    def __init__(
        self,
        limiter: Limiter,
        controller: Controller,
        windows: SignalWindows,
        sla: Sla,
        *,
        interval: float = 1.0,
        min_samples: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0 or min_samples < 1:
            raise ValueError("interval must be positive and min_samples >= 1")
        self.limiter = limiter
        self.controller = controller
        self.windows = windows
        self.sla = sla
        self.interval = interval
        self.min_samples = min_samples
        self.clock = clock
        self.last: Tick | None = None

    def observe(self, sample: Sample) -> Verdict | None:
        """Record one finished request; its verdict against the SLA, None when it did
        not succeed (a failure is not served, so it is not judged on latency)."""
        self.windows.observe(sample, self.clock())
        if sample.outcome is Outcome.SUCCESS:
            return self.sla.verdict(sample.values())
        return None

    def tick(self) -> Tick:
        now = self.clock()
        limiter = self.limiter
        previous = limiter.limit
        observation = self.windows.observation(
            now,
            limit=previous,
            peak_inflight=limiter.take_peak_inflight(),
            queued=limiter.queued,
            targets=self.sla.targets,
            percentile=self.sla.percentile,
            min_samples=self.min_samples,
            min_epoch=limiter.epoch,
        )
        decision = self.controller.decide(observation)
        if decision.limit != previous:
            limiter.set_limit(decision.limit)
            log.info(
                "limit %d -> %d (%s): %s", previous, decision.limit, decision.cause, decision.reason
            )
        else:
            log.debug("limit %d held (%s): %s", previous, decision.cause, decision.reason)
        self.last = Tick(observation, decision)
        return self.last

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
