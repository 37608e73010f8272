"""The one interface every limit controller implements (Netflix's split: a controller
computes the limit, the limiter enforces it, permits report outcomes), and the
parameters the adaptive controllers share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


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

    SLA_BREACH = "sla_breach"  # a signal's percentile is over its target
    OVERLOAD = "overload"  # the overload outcome rate passed its threshold
    HEADROOM = "headroom"  # every target met and the limit is in use: grow
    SLOW_START = "slow_start"  # first growth phase before any breach
    IDLE = "idle"  # limit not in use: hold
    THIN_DATA = "thin_data"  # not enough fresh samples: hold
    WITHIN_BAND = "within_band"  # gradient: close enough to target
    FIXED = "fixed"  # the fixed controller never moves


@dataclass(frozen=True, slots=True)
class Observation:
    """What the control loop saw since the limit last changed (fresh evidence only)."""

    now: float
    limit: int
    peak_inflight: int  # most requests in flight at once since the last decision
    queued: int  # requests waiting for a permit right now
    # signal -> its value at the SLA percentile over fresh samples; None: not enough data
    percentiles: Mapping[str, float | None]
    targets: Mapping[str, float]  # signal -> SLA target (only signals that have one)
    completed: int  # fresh outcomes (success + overload) since the limit last changed
    overloaded: int  # of which overload


@dataclass(frozen=True, slots=True)
class Decision:
    """The limit to use from now on; whether it moved is read against the observation."""

    limit: int
    cause: Cause
    reason: str  # one human-readable sentence: what was seen and why the limit moved
    details: Mapping[str, float | int | str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Policy:
    """What every adaptive controller is told by the operator, in one place."""

    min_limit: int = 1
    max_limit: int = 256
    percentile: float = 0.9  # the percentile the SLA targets apply to
    overload_threshold: float = 0.05  # overload outcome rate that triggers a decrease
    utilization_threshold: float = 0.8  # grow only while peak inflight >= this x limit
    min_completed: int = 20  # with no measured target, outcomes needed to judge

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.max_limit:
            raise ValueError(
                f"need 1 <= min_limit <= max_limit, got {self.min_limit}, {self.max_limit}"
            )
        if not 0 < self.percentile < 1:
            raise ValueError("percentile must be in (0, 1)")
        if not 0 <= self.overload_threshold <= 1 or not 0 < self.utilization_threshold <= 1:
            raise ValueError("thresholds must be fractions")
        if self.min_completed < 1:
            raise ValueError("min_completed must be >= 1")

    def clamp(self, limit: int) -> int:
        return min(self.max_limit, max(self.min_limit, limit))


class Controller(Protocol):
    def decide(self, obs: Observation) -> Decision: ...
