"""Observations for controller tests, and a probe that reads each decision's direction
against the observation it answered (a Decision does not store it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.core.controller import Cause, Controller, Decision, Direction, Observation, Policy
from proxy.core.evidence import SignalEvidence

ObsFactory = Callable[..., Observation]

POLICY_FIELDS = frozenset(Policy.__dataclass_fields__)


def split_policy(kwargs: Mapping[str, Any]) -> tuple[Policy, dict[str, Any]]:
    """Keyword arguments of a controller test: the Policy's, and the controller's own."""
    policy = Policy(**{k: v for k, v in kwargs.items() if k in POLICY_FIELDS})
    return policy, {k: v for k, v in kwargs.items() if k not in POLICY_FIELDS}


def evidence(
    target: float, values: Iterable[float], age: float = 60.0, pending: Iterable[float] = ()
) -> SignalEvidence:
    """One signal's fresh evidence: `values` of requests sent `age` seconds ago, and
    the ages of those still waiting."""
    return SignalEvidence(target, tuple((age, v) for v in values), tuple(pending))


def make_observation(
    *,
    limit: int = 32,
    inflight: int | None = None,
    peak_inflight: int | None = None,
    queued: int = 0,
    signals: Mapping[str, SignalEvidence] | None = None,
    completed: int = 100,
    overloaded: int = 0,
    good_rate: float = 0.0,
    now: float = 0.0,
) -> Observation:
    """A busy observation (in flight = peak = limit); by default one TTFT target of
    0.3 s with 100 requests at half of it (conclusively under)."""
    if signals is None:
        signals = {"ttft": evidence(0.3, [0.15] * 100)}
    busy = limit if peak_inflight is None else peak_inflight
    return Observation(
        now=now,
        limit=limit,
        inflight=min(busy, limit) if inflight is None else inflight,
        peak_inflight=busy,
        queued=queued,
        signals=signals,
        completed=completed,
        overloaded=overloaded,
        good_rate=good_rate,
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
