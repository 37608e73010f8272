"""AIMD against the stated SLA: back off multiplicatively on evidence of overload,
grow while every target is met and the limit is actually used.

Also home of `Evidence`, the reading of an Observation that every adaptive
controller shares (which signals breach, which are thin, is the limit used), so
AIMD and gradient can never disagree about what they saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.core.controller import Decision, Direction, Observation

if TYPE_CHECKING:
    from proxy.settings import Settings

# One overloaded request is noise (a restart, one bad node); three in the same
# fresh window are a pattern.
MIN_OVERLOAD_EVENTS = 3
# However far over its target a signal is, one decision at most halves the limit.
MAX_CUT = 0.5

Details = dict[str, float | int | str | None]


def percentile_label(q: float) -> str:
    """0.9 -> 'p90', 0.999 -> 'p99.9'."""
    return f"p{q * 100:g}"


def direction(old: int, new: int) -> Direction:
    if new > old:
        return Direction.UP
    if new < old:
        return Direction.DOWN
    return Direction.HOLD


@dataclass(frozen=True, slots=True)
class Breach:
    signal: str
    value: float
    target: float

    @property
    def ratio(self) -> float:
        return self.value / self.target

    def describe(self, label: str) -> str:
        op = ">" if self.value > self.target else "<="
        return f"{self.signal} {label} {self.value:.3f}s {op} target {self.target:.3f}s"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What an observation says, independent of how a controller reacts to it."""

    worst: Breach | None  # targeted signal with data and the highest value/target
    thin: tuple[str, ...]  # targeted signals without enough fresh samples
    overload_rate: float | None  # overloaded / completed; None with no outcomes
    overloaded: bool  # the overload rate is over threshold on enough events
    used: bool  # the limit is in use (near it, or requests queue)
    enough_outcomes: bool  # with no measured target, outcomes are the only evidence

    @property
    def breached(self) -> bool:
        return self.worst is not None and self.worst.value > self.worst.target

    @property
    def ratio(self) -> float:
        """Worst value/target; 0 when nothing is targeted (no latency constraint)."""
        return self.worst.ratio if self.worst is not None else 0.0

    @property
    def thin_data(self) -> bool:
        return bool(self.thin) or not self.enough_outcomes


def assess(
    obs: Observation,
    *,
    overload_threshold: float,
    utilization_threshold: float,
    min_completed: int,
) -> Evidence:
    measured = [
        Breach(signal, value, target)
        for signal, target in obs.targets.items()
        if (value := obs.percentiles.get(signal)) is not None
    ]
    # A targeted signal missing from `percentiles` is not measured by this traffic
    # at all; None means measured, but too few fresh samples yet.
    judged = [s for s in obs.targets if s in obs.percentiles]
    thin = tuple(s for s in judged if obs.percentiles[s] is None)
    rate = obs.overloaded / obs.completed if obs.completed > 0 else None
    return Evidence(
        worst=max(measured, key=lambda b: b.ratio, default=None),
        thin=thin,
        overload_rate=rate,
        overloaded=(
            rate is not None and obs.overloaded >= MIN_OVERLOAD_EVENTS and rate > overload_threshold
        ),
        used=obs.queued > 0 or obs.peak_inflight >= utilization_threshold * obs.limit,
        enough_outcomes=bool(judged) or obs.completed >= min_completed,
    )


def evidence_details(obs: Observation, ev: Evidence) -> Details:
    details: Details = {
        "worst_signal": ev.worst.signal if ev.worst else None,
        "worst_ratio": round(ev.worst.ratio, 4) if ev.worst else None,
        "overload_rate": round(ev.overload_rate, 4) if ev.overload_rate is not None else None,
        "completed": obs.completed,
        "overloaded": obs.overloaded,
        "peak_inflight": obs.peak_inflight,
        "queued": obs.queued,
    }
    for signal, value in obs.percentiles.items():
        details[f"{signal}_percentile"] = value
    return details


def overload_text(obs: Observation, ev: Evidence, threshold: float) -> str:
    return (
        f"{obs.overloaded} of {obs.completed} fresh outcomes overloaded "
        f"({(ev.overload_rate or 0.0):.1%} > {threshold:.1%})"
    )


def idle_text(obs: Observation, utilization_threshold: float) -> str:
    return (
        f"peak inflight {obs.peak_inflight} < {utilization_threshold:.0%} of limit "
        f"{obs.limit} and nothing queued"
    )


def thin_text(ev: Evidence, min_completed: int) -> str:
    if ev.thin:
        return f"too few fresh samples for {', '.join(ev.thin)} to judge"
    return f"fewer than {min_completed} fresh outcomes to judge"


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
        *,
        min_limit: int = 1,
        max_limit: int = 256,
        increase_step: int = 1,
        backoff: float = 0.9,
        overload_threshold: float = 0.05,
        utilization_threshold: float = 0.8,
        min_completed: int = 20,
        percentile: float = 0.9,
        slow_start_factor: float = 1.5,
        slow_start_below: float = 0.8,
        recovery_below: float = 0.5,
        recovery_flat: float = 0.9,
    ) -> None:
        if not 1 <= min_limit <= max_limit:
            raise ValueError(f"need 1 <= min_limit <= max_limit, got {min_limit}, {max_limit}")
        if not 0 < backoff < 1:
            raise ValueError("backoff must be in (0, 1)")
        if increase_step < 1 or slow_start_factor < 1 or not 0 < slow_start_below < 1:
            raise ValueError("increase_step >= 1, slow_start_factor >= 1, 0 < below < 1")
        if not 0 < recovery_below < recovery_flat <= 1:
            raise ValueError("need 0 < recovery_below < recovery_flat <= 1")
        self.min_limit, self.max_limit = min_limit, max_limit
        self.increase_step, self.backoff = increase_step, backoff
        self.overload_threshold = overload_threshold
        self.utilization_threshold = utilization_threshold
        self.min_completed = min_completed
        self.label = percentile_label(percentile)
        self.slow_start_factor, self.slow_start_below = slow_start_factor, slow_start_below
        self.recovery_below, self.recovery_flat = recovery_below, recovery_flat
        self.slow_start = slow_start_factor > 1

    @classmethod
    def from_settings(cls, settings: Settings) -> AIMDController:
        return cls(
            min_limit=settings.min_limit,
            max_limit=settings.max_limit,
            increase_step=settings.increase_step,
            backoff=settings.backoff,
            overload_threshold=settings.overload_threshold,
            utilization_threshold=settings.utilization_threshold,
            min_completed=settings.window_min_samples,
            percentile=settings.sla_percentile,
        )

    @property
    def phase(self) -> str:
        return "slow_start" if self.slow_start else "additive"

    def decide(self, obs: Observation) -> Decision:
        limit = min(self.max_limit, max(self.min_limit, obs.limit))
        ev = assess(
            obs,
            overload_threshold=self.overload_threshold,
            utilization_threshold=self.utilization_threshold,
            min_completed=self.min_completed,
        )
        details = {**evidence_details(obs, ev), "phase": self.phase}
        if ev.breached or ev.overloaded:
            # Fresh evidence (measured under the current limit) says too much:
            # this is the only path that ends slow start.
            self.slow_start = False
            details["phase"] = self.phase
            seen = (
                ev.worst.describe(self.label)
                if ev.breached and ev.worst
                else overload_text(obs, ev, self.overload_threshold)
            )
            cause = "sla_breach" if ev.breached else "overload"
            factor = self.backoff_factor(ev.ratio if ev.breached else 1.0)
            details["backoff_factor"] = round(factor, 4)
            new = max(self.min_limit, min(limit - 1, math.floor(limit * factor)))
            if new >= limit:
                return self._decision(obs, limit, cause, f"{seen}, limit at floor {limit}", details)
            return self._decision(obs, new, cause, f"{seen}: {limit} -> {new}", details)
        if not ev.used:
            text = f"{idle_text(obs, self.utilization_threshold)}: holding at {limit}"
            return self._decision(obs, limit, "idle", text, details)
        if ev.thin_data:
            text = f"{thin_text(ev, self.min_completed)}: holding at {limit}"
            return self._decision(obs, limit, "thin_data", text, details)
        return self._grow(obs, limit, ev, details)

    def _grow(self, obs: Observation, limit: int, ev: Evidence, details: Details) -> Decision:
        if ev.worst is not None:
            seen = f"worst {ev.worst.describe(self.label)} ({ev.ratio:.0%})"
        else:
            seen = f"no overload in {obs.completed} fresh outcomes"
        seen += f", limit in use (peak {obs.peak_inflight}/{limit}, queued {obs.queued})"
        if self.slow_start:
            factor = self.growth_factor(ev.ratio, self.slow_start_below, 1.0)
            cause, how = "slow_start", f"slow start x{factor:.2f}"
        else:
            factor = self.growth_factor(ev.ratio, self.recovery_below, self.recovery_flat)
            cause = "headroom"
            how = f"far under target x{factor:.2f}" if factor > 1 else f"+{self.increase_step}"
        details["growth_factor"] = round(factor, 4)
        new = max(limit + self.increase_step, math.floor(limit * factor))
        new = min(self.max_limit, new)
        if new <= limit:
            return self._decision(obs, limit, cause, f"{seen}, limit at ceiling {limit}", details)
        return self._decision(obs, new, cause, f"{seen}, {how}: {limit} -> {new}", details)

    def growth_factor(self, ratio: float, full_below: float, flat_at: float) -> float:
        """`slow_start_factor` at or below `full_below` x target, 1 from `flat_at` on."""
        headroom = (flat_at - ratio) / (flat_at - full_below)
        return 1.0 + (self.slow_start_factor - 1.0) * min(1.0, max(0.0, headroom))

    def backoff_factor(self, ratio: float) -> float:
        """`backoff` for a marginal breach; limit / ratio for a large one, at most halving."""
        return max(MAX_CUT, min(self.backoff, 1.0 / ratio)) if ratio > 0 else self.backoff

    @staticmethod
    def _decision(obs: Observation, new: int, cause: str, reason: str, d: Details) -> Decision:
        return Decision(new, direction(obs.limit, new), cause, reason, d)
