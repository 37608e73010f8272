"""Observations for controller tests, and a probe that reads each decision's direction
against the observation it answered (a Decision does not store it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.core.controller import Cause, Controller, Decision, Direction, Observation, Policy

ObsFactory = Callable[..., Observation]

POLICY_FIELDS = frozenset(Policy.__dataclass_fields__)


def split_policy(kwargs: Mapping[str, Any]) -> tuple[Policy, dict[str, Any]]:
    """Keyword arguments of a controller test: the Policy's, and the controller's own."""
    policy = Policy(**{k: v for k, v in kwargs.items() if k in POLICY_FIELDS})
    return policy, {k: v for k, v in kwargs.items() if k not in POLICY_FIELDS}


def make_observation(
    *,
    limit: int = 32,
    peak_inflight: int | None = None,
    queued: int = 0,
    percentiles: Mapping[str, float | None] | None = None,
    targets: Mapping[str, float] | None = None,
    completed: int = 100,
    overloaded: int = 0,
    now: float = 0.0,
) -> Observation:
    """A busy observation (peak inflight = limit) with every target met by default."""
    targets = {"ttft": 0.3} if targets is None else targets
    if percentiles is None:
        percentiles = {signal: target * 0.5 for signal, target in targets.items()}
    return Observation(
        now=now,
        limit=limit,
        peak_inflight=limit if peak_inflight is None else peak_inflight,
        queued=queued,
        percentiles=percentiles,
        targets=targets,
        completed=completed,
        overloaded=overloaded,
    )


@dataclass(frozen=True)
class Judged:
    limit: int
    direction: Direction
    cause: Cause
    reason: str
    details: Mapping[str, float | int | str | None]


class Probe:
    """A controller whose decisions also say which way the limit moved."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self.controller, name)

    def decide(self, obs: Observation) -> Judged:
        d: Decision = self.controller.decide(obs)
        return Judged(d.limit, Direction.of(obs.limit, d.limit), d.cause, d.reason, d.details)
