"""A Gradient2-style controller that compares against the SLA, not a learned baseline.

Netflix's Gradient2Limit computes `gradient = clamp(longRtt / shortRtt, 0.5, 1)`,
`new = limit * gradient + queueSize(limit)` and smooths `limit*(1-s) + new*s`.
Its long-RTT baseline drifts and has to be probed; here the stated target is the
baseline: `gradient = clamp(target / observed, 0.5, 1)` for the worst signal.

Two departures keep it from settling *above* the SLA: the queue allowance
(sqrt(limit)) is only added while every signal is clearly under target, and within
`band` of the target it holds instead of growing. The estimate is a float, so
small smoothed steps accumulate across decisions until the integer limit moves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.core.aimd import (
    Details,
    assess,
    direction,
    evidence_details,
    idle_text,
    overload_text,
    percentile_label,
    thin_text,
)
from proxy.core.controller import Decision, Observation

if TYPE_CHECKING:
    from proxy.settings import Settings

MIN_GRADIENT = 0.5  # as Gradient2: one outlier window never halves the limit at once


class GradientController:
    def __init__(
        self,
        *,
        initial_limit: int = 8,
        min_limit: int = 1,
        max_limit: int = 256,
        overload_threshold: float = 0.05,
        utilization_threshold: float = 0.8,
        min_completed: int = 20,
        percentile: float = 0.9,
        smoothing: float = 0.2,
        band: float = 0.1,
        queue_allowance: Callable[[float], float] = math.sqrt,
    ) -> None:
        if not 1 <= min_limit <= initial_limit <= max_limit:
            raise ValueError("need 1 <= min_limit <= initial_limit <= max_limit")
        if not 0 < smoothing <= 1 or not 0 <= band < 1:
            raise ValueError("smoothing must be in (0, 1], band in [0, 1)")
        self.min_limit, self.max_limit = min_limit, max_limit
        self.overload_threshold = overload_threshold
        self.utilization_threshold = utilization_threshold
        self.min_completed = min_completed
        self.label = percentile_label(percentile)
        self.smoothing, self.band = smoothing, band
        self.queue_allowance = queue_allowance
        self.estimate = float(initial_limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> GradientController:
        return cls(
            initial_limit=settings.initial_limit,
            min_limit=settings.min_limit,
            max_limit=settings.max_limit,
            overload_threshold=settings.overload_threshold,
            utilization_threshold=settings.utilization_threshold,
            min_completed=settings.window_min_samples,
            percentile=settings.sla_percentile,
        )

    def decide(self, obs: Observation) -> Decision:
        limit = min(self.max_limit, max(self.min_limit, obs.limit))
        if _publish(self.estimate) != limit:
            # Someone else set the limit (restart, operator): start from theirs.
            self.estimate = float(limit)
        ev = assess(
            obs,
            overload_threshold=self.overload_threshold,
            utilization_threshold=self.utilization_threshold,
            min_completed=self.min_completed,
        )
        details = evidence_details(obs, ev)
        if ev.overloaded:
            seen = overload_text(obs, ev, self.overload_threshold)
            return self._move(obs, limit, MIN_GRADIENT, 0.0, "overload", seen, details)
        if ev.breached and ev.worst is not None:
            gradient = max(MIN_GRADIENT, min(1.0, 1.0 / ev.ratio))
            seen = ev.worst.describe(self.label)
            return self._move(obs, limit, gradient, 0.0, "sla_breach", seen, details)
        if not ev.used:
            text = f"{idle_text(obs, self.utilization_threshold)}: holding at {limit}"
            return Decision(limit, direction(obs.limit, limit), "idle", text, details)
        if ev.thin_data:
            text = f"{thin_text(ev, self.min_completed)}: holding at {limit}"
            return Decision(limit, direction(obs.limit, limit), "thin_data", text, details)
        if ev.worst is not None and ev.ratio >= 1.0 - self.band:
            text = f"worst {ev.worst.describe(self.label)} ({ev.ratio:.0%}): holding at {limit}"
            return Decision(limit, direction(obs.limit, limit), "within_band", text, details)
        if ev.worst is not None:
            seen = f"worst {ev.worst.describe(self.label)} ({ev.ratio:.0%})"
        else:
            seen = f"no overload in {obs.completed} fresh outcomes"
        allowance = self.queue_allowance(self.estimate)
        return self._move(obs, limit, 1.0, allowance, "headroom", seen, details)

    def _move(
        self,
        obs: Observation,
        limit: int,
        gradient: float,
        allowance: float,
        cause: str,
        seen: str,
        details: Details,
    ) -> Decision:
        target = self.estimate * gradient + allowance
        smoothed = self.estimate * (1.0 - self.smoothing) + target * self.smoothing
        self.estimate = min(float(self.max_limit), max(float(self.min_limit), smoothed))
        new = _publish(self.estimate)
        details = {
            **details,
            "gradient": round(gradient, 4),
            "allowance": round(allowance, 3),
            "estimate": round(self.estimate, 3),
        }
        how = f"gradient {gradient:.2f}" + (f" + {allowance:.1f}" if allowance else "")
        if new != limit:
            reason = f"{seen}, {how}: {limit} -> {new}"
        else:  # the float estimate moved less than the rounding step, or is clamped
            reason = f"{seen}, {how}: estimate {self.estimate:.2f}, holding at {limit}"
        return Decision(new, direction(obs.limit, new), cause, reason, details)


def _publish(estimate: float) -> int:
    """Round half up: truncation (as Gradient2 does) biases the limit downwards."""
    return math.floor(estimate + 0.5)
