"""The one interface every limit controller implements (Netflix's split: a controller
computes the limit, the limiter enforces it, permits report outcomes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    HOLD = "hold"


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
    limit: int
    direction: Direction
    cause: str  # bounded vocabulary, used as a metric label: see CAUSES
    reason: str  # one human-readable sentence: what was seen and why the limit moved
    details: Mapping[str, float | int | str | None] = field(default_factory=dict)


# Causes a controller may give; the metric label `cause` takes only these.
CAUSES = (
    "sla_breach",  # a signal's percentile is over its target
    "overload",  # the overload outcome rate passed its threshold
    "headroom",  # every target met and the limit is in use: grow
    "slow_start",  # first growth phase before any breach
    "idle",  # limit not in use: hold
    "thin_data",  # not enough fresh samples: hold
    "within_band",  # gradient: close enough to target
    "fixed",  # the fixed controller never moves
)


class Controller(Protocol):
    def decide(self, obs: Observation) -> Decision: ...
