"""What an Observation says, independent of how a controller reacts to it: which
targeted signal is worst, which are thin, whether upstream overload passed its
threshold, whether the limit is in use. Every adaptive controller reads the same
Evidence, so AIMD and gradient can never disagree about what they saw."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.core.controller import Observation, Policy

# One overloaded request is noise (a restart, one bad node); three in the same
# fresh window are a pattern.
MIN_OVERLOAD_EVENTS = 3

Details = dict[str, float | int | str | None]


def percentile_label(q: float) -> str:
    """0.9 -> 'p90', 0.999 -> 'p99.9'."""
    return f"p{q * 100:g}"


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
    obs: Observation
    policy: Policy
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

    @property
    def label(self) -> str:
        return percentile_label(self.policy.percentile)

    def details(self) -> Details:
        obs = self.obs
        details: Details = {
            "worst_signal": self.worst.signal if self.worst else None,
            "worst_ratio": round(self.worst.ratio, 4) if self.worst else None,
            "overload_rate": (
                round(self.overload_rate, 4) if self.overload_rate is not None else None
            ),
            "completed": obs.completed,
            "overloaded": obs.overloaded,
            "peak_inflight": obs.peak_inflight,
            "queued": obs.queued,
        }
        for signal, value in obs.percentiles.items():
            details[f"{signal}_percentile"] = value
        return details

    def overload_text(self) -> str:
        obs = self.obs
        return (
            f"{obs.overloaded} of {obs.completed} fresh outcomes overloaded "
            f"({(self.overload_rate or 0.0):.1%} > {self.policy.overload_threshold:.1%})"
        )

    def idle_text(self) -> str:
        obs = self.obs
        return (
            f"peak inflight {obs.peak_inflight} < {self.policy.utilization_threshold:.0%} "
            f"of limit {obs.limit} and nothing queued"
        )

    def thin_text(self) -> str:
        if self.thin:
            return f"too few fresh samples for {', '.join(self.thin)} to judge"
        return f"fewer than {self.policy.min_completed} fresh outcomes to judge"

    def seen_text(self) -> str:
        """What a growth decision rests on."""
        if self.worst is not None:
            return f"worst {self.worst.describe(self.label)} ({self.ratio:.0%})"
        return f"no overload in {self.obs.completed} fresh outcomes"


def assess(obs: Observation, policy: Policy) -> Evidence:
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
        obs=obs,
        policy=policy,
        worst=max(measured, key=lambda b: b.ratio, default=None),
        thin=thin,
        overload_rate=rate,
        overloaded=(
            rate is not None
            and obs.overloaded >= MIN_OVERLOAD_EVENTS
            and rate > policy.overload_threshold
        ),
        used=obs.queued > 0 or obs.peak_inflight >= policy.utilization_threshold * obs.limit,
        enough_outcomes=bool(judged) or obs.completed >= policy.min_completed,
    )
