"""AIMD against the stated SLA: back off multiplicatively on evidence of overload,
grow while every target is met and the limit is actually used."""

from __future__ import annotations

import math

from proxy.core.controller import Cause, Decision, Observation, Policy
from proxy.core.evidence import Details, Evidence, assess

# However far over its target a signal is, one decision at most halves the limit.
MAX_CUT = 0.5


class AIMDController:
    """Slow start (multiplicative growth) until the first decrease, then AIMD whose
    steps are scaled by how far the evidence is from the target.

    Growth per decision in slow start is `slow_start_factor` while the worst signal
    is at most `slow_start_below` of its target, tapering linearly to +step as it
    nears the target: latency rises with concurrency, so the approach to the knee
    brakes itself instead of doubling past it.

    After slow start, near the target (the steady state) it is classic AIMD: +step,
    x backoff. Far from the target the evidence says the upstream's capacity itself
    moved, and one-step-per-fresh-window would take minutes to follow it (measured
    in the capacity-change scenario): a breach by a factor r cuts to limit / r (at
    most halving, at least the backoff), and a worst signal under `recovery_below`
    of its target grows by up to `slow_start_factor` again, tapering to +step at
    `recovery_flat`.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        increase_step: int = 1,
        backoff: float = 0.9,
        slow_start_factor: float = 1.5,
        slow_start_below: float = 0.8,
        recovery_below: float = 0.5,
        recovery_flat: float = 0.9,
    ) -> None:
        if not 0 < backoff < 1:
            raise ValueError("backoff must be in (0, 1)")
        if increase_step < 1 or slow_start_factor < 1 or not 0 < slow_start_below < 1:
            raise ValueError("increase_step >= 1, slow_start_factor >= 1, 0 < below < 1")
        if not 0 < recovery_below < recovery_flat <= 1:
            raise ValueError("need 0 < recovery_below < recovery_flat <= 1")
        self.policy = policy or Policy()
        self.increase_step, self.backoff = increase_step, backoff
        self.slow_start_factor, self.slow_start_below = slow_start_factor, slow_start_below
        self.recovery_below, self.recovery_flat = recovery_below, recovery_flat
        self.slow_start = slow_start_factor > 1

    @property
    def phase(self) -> str:
        return "slow_start" if self.slow_start else "additive"

    def decide(self, obs: Observation) -> Decision:
        policy = self.policy
        limit = policy.clamp(obs.limit)
        ev = assess(obs, policy)
        details = {**ev.details(), "phase": self.phase}
        if ev.breached or ev.overloaded:
            # Fresh evidence (measured under the current limit) says too much:
            # this is the only path that ends slow start.
            self.slow_start = False
            details["phase"] = self.phase
            seen = ev.worst.describe(ev.label) if ev.breached and ev.worst else ev.overload_text()
            cause = Cause.SLA_BREACH if ev.breached else Cause.OVERLOAD
            factor = self.backoff_factor(ev.ratio if ev.breached else 1.0)
            details["backoff_factor"] = round(factor, 4)
            new = max(policy.min_limit, min(limit - 1, math.floor(limit * factor)))
            if new >= limit:
                return Decision(limit, cause, f"{seen}, limit at floor {limit}", details)
            return Decision(new, cause, f"{seen}: {limit} -> {new}", details)
        if not ev.used:
            return Decision(limit, Cause.IDLE, f"{ev.idle_text()}: holding at {limit}", details)
        if ev.thin_data:
            text = f"{ev.thin_text()}: holding at {limit}"
            return Decision(limit, Cause.THIN_DATA, text, details)
        return self._grow(obs, limit, ev, details)

    def _grow(self, obs: Observation, limit: int, ev: Evidence, details: Details) -> Decision:
        seen = ev.seen_text()
        seen += f", limit in use (peak {obs.peak_inflight}/{limit}, queued {obs.queued})"
        if self.slow_start:
            factor = self.growth_factor(ev.ratio, self.slow_start_below, 1.0)
            cause, how = Cause.SLOW_START, f"slow start x{factor:.2f}"
        else:
            factor = self.growth_factor(ev.ratio, self.recovery_below, self.recovery_flat)
            cause = Cause.HEADROOM
            how = f"far under target x{factor:.2f}" if factor > 1 else f"+{self.increase_step}"
        details["growth_factor"] = round(factor, 4)
        new = max(limit + self.increase_step, math.floor(limit * factor))
        new = min(self.policy.max_limit, new)
        if new <= limit:
            return Decision(limit, cause, f"{seen}, limit at ceiling {limit}", details)
        return Decision(new, cause, f"{seen}, {how}: {limit} -> {new}", details)

    def growth_factor(self, ratio: float, full_below: float, flat_at: float) -> float:
        """`slow_start_factor` at or below `full_below` x target, 1 from `flat_at` on."""
        headroom = (flat_at - ratio) / (flat_at - full_below)
        return 1.0 + (self.slow_start_factor - 1.0) * min(1.0, max(0.0, headroom))

    def backoff_factor(self, ratio: float) -> float:
        """`backoff` for a marginal breach; limit / ratio for a large one, at most halving."""
        return max(MAX_CUT, min(self.backoff, 1.0 / ratio)) if ratio > 0 else self.backoff
