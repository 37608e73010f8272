"""The one interface every limit controller implements (Netflix's split: a controller
computes the limit, the limiter enforces it, tickets report outcomes), and the
parameters the adaptive controller is given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from proxy.core.evidence import SignalEvidence


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    HOLD = "hold"

    @classmethod
    def of(cls, old: int, new: int) -> Direction:
        if new > old:
            return cls.UP
        if new < old:
            return cls.DOWN
        return cls.HOLD


class Cause(StrEnum):
    """Why a decision went the way it did; a bounded vocabulary (a metric label)."""

    SLA_BREACH = "sla_breach"  # a signal is conclusively over its target
    OVERLOAD = "overload"  # upstream failures are conclusively over their threshold
    HEADROOM = "headroom"  # every target conclusively met and the limit in use: grow
    IDLE = "idle"  # limit not in use: hold
    INCONCLUSIVE = "inconclusive"  # the evidence decides neither way yet: hold
    DEAD_TIME = "dead_time"  # a decrease has not taken effect yet: hold
    FLOOR = "floor"  # over target at any concurrency: fewer requests would not help
    FIXED = "fixed"  # the fixed controller never moves


@dataclass(frozen=True, slots=True)
class Observation:
    """What the control loop saw: the limiter now, and the evidence gathered since the
    limit last changed (requests admitted under the current limit only)."""

    now: float
    limit: int
    inflight: int  # requests holding a permit now
    peak_inflight: int  # most requests in flight at once since the last decision
    queued: int  # requests waiting for a permit right now
    # Targeted signals this traffic measures (a TTFT target with only non-streamed
    # answers is left out); each with its fresh evidence, perhaps still empty.
    signals: Mapping[str, SignalEvidence]
    completed: int  # fresh outcomes (success + overload)
    overloaded: int  # of which overload
    good_rate: float = 0.0  # fresh successes within every target, per second

    def quantiles(self, q: float) -> dict[str, float | None]:
        """Each signal's fresh value at percentile q, as far as known (for reports)."""
        return {name: ev.quantile(q) for name, ev in self.signals.items()}


@dataclass(frozen=True, slots=True)
class Decision:
    """The limit to use from now on; whether it moved is read against the observation."""

    limit: int
    cause: Cause
    reason: str  # one human-readable sentence: what was seen and why the limit moved
    details: Mapping[str, float | int | str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Policy:
    """What the operator tells the adaptive controller, in one place."""

    min_limit: int = 1
    max_limit: int = 4096
    percentile: float = 0.9  # the percentile the SLA targets apply to
    confidence: float = 0.95  # of each decision's statistical test
    min_samples: int = 5  # fewest values a tolerance bound is computed from
    overload_threshold: float = 0.05  # upstream failure rate that calls for a decrease
    utilization_threshold: float = 0.8  # grow only while peak inflight >= this x limit

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.max_limit:
            raise ValueError(
                f"need 1 <= min_limit <= max_limit, got {self.min_limit}, {self.max_limit}"
            )
        if not 0 < self.percentile < 1 or not 0.5 <= self.confidence < 1:
            raise ValueError("percentile must be in (0, 1), confidence in [0.5, 1)")
        if not 0 < self.overload_threshold < 1 or not 0 < self.utilization_threshold <= 1:
            raise ValueError("thresholds must be fractions")
        if self.min_samples < 3:
            raise ValueError("min_samples must be >= 3 (a tolerance bound needs a spread)")

    def clamp(self, limit: int) -> int:
        return min(self.max_limit, max(self.min_limit, limit))


class Controller(Protocol):
    def decide(self, obs: Observation) -> Decision: ...
