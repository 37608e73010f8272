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

from proxy.core.controller import Cause, Decision, Observation, Policy
from proxy.core.evidence import Details, assess

MIN_GRADIENT = 0.5  # as Gradient2: one outlier window never halves the limit at once


class GradientController:
    def __init__(
        self,
        policy: Policy | None = None,
        *,
        initial_limit: int = 8,
        smoothing: float = 0.2,
        band: float = 0.1,
        queue_allowance: Callable[[float], float] = math.sqrt,
    ) -> None:
        self.policy = policy or Policy()
        if not self.policy.min_limit <= initial_limit <= self.policy.max_limit:
            raise ValueError("need min_limit <= initial_limit <= max_limit")
        if not 0 < smoothing <= 1 or not 0 <= band < 1:
            raise ValueError("smoothing must be in (0, 1], band in [0, 1)")
        self.smoothing, self.band = smoothing, band
        self.queue_allowance = queue_allowance
        self.estimate = float(initial_limit)

    def decide(self, obs: Observation) -> Decision:
        limit = self.policy.clamp(obs.limit)
        if _publish(self.estimate) != limit:
            # Someone else set the limit (restart, operator): start from theirs.
            self.estimate = float(limit)
        ev = assess(obs, self.policy)
        details = ev.details()
        if ev.overloaded:
            return self._move(limit, MIN_GRADIENT, 0.0, Cause.OVERLOAD, ev.overload_text(), details)
        if ev.breached and ev.worst is not None:
            gradient = max(MIN_GRADIENT, min(1.0, 1.0 / ev.ratio))
            seen = ev.worst.describe(ev.label)
            return self._move(limit, gradient, 0.0, Cause.SLA_BREACH, seen, details)
        if not ev.used:
            return Decision(limit, Cause.IDLE, f"{ev.idle_text()}: holding at {limit}", details)
        if ev.thin_data:
            text = f"{ev.thin_text()}: holding at {limit}"
            return Decision(limit, Cause.THIN_DATA, text, details)
        if ev.worst is not None and ev.ratio >= 1.0 - self.band:
            text = f"{ev.seen_text()}: holding at {limit}"
            return Decision(limit, Cause.WITHIN_BAND, text, details)
        allowance = self.queue_allowance(self.estimate)
        return self._move(limit, 1.0, allowance, Cause.HEADROOM, ev.seen_text(), details)

    def _move(
        self,
        limit: int,
        gradient: float,
        allowance: float,
        cause: Cause,
        seen: str,
        details: Details,
    ) -> Decision:
        target = self.estimate * gradient + allowance
        smoothed = self.estimate * (1.0 - self.smoothing) + target * self.smoothing
        policy = self.policy
        self.estimate = min(float(policy.max_limit), max(float(policy.min_limit), smoothed))
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
        return Decision(new, cause, reason, details)


def _publish(estimate: float) -> int:
    """Round half up: truncation (as Gradient2 does) biases the limit downwards."""
    return math.floor(estimate + 0.5)
