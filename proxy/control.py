"""The control loop: latency window -> controller -> limiter, every control interval.

Samples are tagged with the limiter epoch they were admitted under; after the limit
moves (a new epoch) only samples admitted since then count, so one breach can never
cause two decreases. Reporting (metrics, Alertmanager) is the caller's: `run` hands
each tick's report to a callback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.core.alert import AlertSnapshot, CapacityAlert
from proxy.core.controller import Decision, Direction, Observation
from proxy.core.factory import build_controller
from proxy.core.outcome import SIGNALS, Sample
from proxy.core.window import SignalWindows, WindowSnapshot
from proxy.limiter import Limiter
from proxy.settings import Settings

log = logging.getLogger("sla_proxy.control")

QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class Tally:
    """Monotonic counts; each tick turns the difference into the alert's rates."""

    arrivals: int = 0
    shed: int = 0
    served_at_sla: int = 0


@dataclass(frozen=True)
class Tick:
    observation: Observation
    decision: Decision
    previous_limit: int
    alert: AlertSnapshot

    @property
    def changed(self) -> bool:
        return self.decision.limit != self.previous_limit


@dataclass
class ControlLoop:
    settings: Settings
    limiter: Limiter
    clock: Callable[[], float] = time.monotonic
    tally: Tally = field(default_factory=Tally)

    def __post_init__(self) -> None:
        self.windows = SignalWindows.from_settings(self.settings)
        self.controller = build_controller(self.settings)
        self.alert = CapacityAlert.from_settings(self.settings, start=self.clock())
        self.targets = self.settings.sla_targets()
        self.last: Tick | None = None
        self._counted = Tally()

    def observe(self, sample: Sample, met_sla: bool) -> None:
        self.windows.observe(sample, self.clock())
        if met_sla:
            self.tally.served_at_sla += 1

    def tick(self) -> Tick:
        now = self.clock()
        limiter = self.limiter
        previous = limiter.limit
        observation = self.windows.observation(
            now,
            limit=previous,
            peak_inflight=limiter.take_peak_inflight(),
            queued=limiter.queued,
            targets=self.targets,
            percentile=self.settings.sla_percentile,
            min_samples=self.settings.window_min_samples,
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
        alert = self._update_alert(now, observation, decision)
        self.last = Tick(observation, decision, previous, alert)
        return self.last

    def _update_alert(self, now: float, obs: Observation, decision: Decision) -> AlertSnapshot:
        counted, tally = self._counted, self.tally
        breached = any(
            value is not None and value > obs.targets[name]
            for name, value in obs.percentiles.items()
            if name in obs.targets
        )
        snapshot = self.alert.update(
            now,
            arrivals=tally.arrivals - counted.arrivals,
            shed=tally.shed - counted.shed,
            served_at_sla=tally.served_at_sla - counted.served_at_sla,
            limit=decision.limit,
            min_limit=self.settings.min_limit,
            sla_breached=breached,
        )
        self._counted = Tally(tally.arrivals, tally.shed, tally.served_at_sla)
        return snapshot

    async def run(self, on_tick: Callable[[Tick], None]) -> None:
        interval = self.settings.control_interval
        while True:
            await asyncio.sleep(interval)
            try:
                on_tick(self.tick())
            except Exception:  # a reporting bug must not stop admission control
                log.exception("control tick failed")

    def window_snapshots(self) -> dict[str, WindowSnapshot]:
        """All recent samples (any epoch): what operators see, not what decides."""
        return self.windows.snapshots(self.clock(), 0, self.settings.window_min_samples)

    def status(self) -> dict[str, Any]:
        limiter = self.limiter
        snapshots = self.window_snapshots()
        signals = {}
        for name in SIGNALS:
            snap = snapshots[name]
            target = self.targets.get(name)
            signals[name] = {
                "p50": snap.percentile(0.5),
                "p90": snap.percentile(0.9),
                "p99": snap.percentile(0.99),
                "at_sla_percentile": snap.percentile(self.settings.sla_percentile),
                "target": target,
                "attainment": snap.attainment(target) if target is not None else None,
                "samples": snap.count,
            }
        last = self.last
        return {
            "limit": limiter.limit,
            "inflight": limiter.inflight,
            "queued": limiter.queued,
            "queued_by_priority": {p.value: n for p, n in limiter.queued_by_priority().items()},
            "epoch": limiter.epoch,
            "algorithm": self.settings.algorithm.value,
            "bounds": {"min": self.settings.min_limit, "max": self.settings.max_limit},
            "sla_percentile": self.settings.sla_percentile,
            "signals": signals,
            "last_decision": None
            if last is None
            else {
                "direction": last.decision.direction.value,
                "cause": last.decision.cause,
                "reason": last.decision.reason,
                "from": last.previous_limit,
                "to": last.decision.limit,
                "details": dict(last.decision.details),
            },
            "alert": None if last is None else last.alert.as_dict(),
        }


__all__ = ["QUANTILES", "ControlLoop", "Direction", "Tally", "Tick"]
