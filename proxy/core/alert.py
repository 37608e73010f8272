"""The capacity alert: demand exceeds what the upstream can serve within the SLA.

A state machine with hysteresis, fed once per control tick with the counts of that
tick. The condition is either of:

- shedding: over the rate window, more than `shed_ratio` of arrivals were shed;
- floor breach: the SLA is still breached with the limit pinned at its floor, or
  the controller found that fewer requests do not relieve the breach (the upstream
  misses the SLA at any concurrency: shedding cannot help).

inactive -> pending when the condition appears; pending -> firing once it held for
`for_seconds` (back to inactive if it lapses first); firing -> resolved after
`resolve_after` seconds without it; resolved -> inactive on the next tick.

The replica estimate: an upstream that just holds a P90 SLA serves 90% of what it
completes within target, so one replica's capacity at the SLA is served-at-SLA /
percentile, and `ceil(demand / capacity) - 1` more replicas carry the demand. While
healthy it says 0: even a healthy upstream misses the target for up to 10% of
requests, which is not a reason to add one.

Rates are sums over the last `rate_window` seconds (by default half of
`for_seconds`, at most 30 s): a burst shorter than half of `for_seconds` keeps the
windowed shed ratio up for less than `for_seconds`, so it cannot fire the alert.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

_RATIO_EPSILON = 1e-9  # 20 / 10 req/s is 2 replicas, not 3 by a rounding hair


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Condition(StrEnum):
    SHEDDING = "shedding"
    FLOOR_BREACH = "floor_breach"


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    state: AlertState
    since: float  # when the current state began
    condition: Condition | None  # what is wrong right now; None: healthy
    arrival_rate: float  # req/s asking for admission
    served_rate: float  # req/s served within every SLA target
    capacity_rate: float  # req/s one upstream completes while holding the SLA
    shed_ratio: float  # shed / arrivals over the rate window
    replicas_needed: int | None  # MORE replicas needed; None: nothing served, unknown
    fired_at: float | None  # start of the current (or last) firing episode
    resolved_at: float | None  # end of the last firing episode
    summary: str
    description: str

    @property
    def firing(self) -> bool:
        return self.state is AlertState.FIRING

    active = firing  # the Alertmanager push speaks of an "active" alert

    def as_dict(self) -> dict[str, str | float | int | bool | None]:
        """JSON-ready, for /status."""
        return {
            "state": self.state.value,
            "firing": self.firing,
            "since": self.since,
            "condition": self.condition.value if self.condition else None,
            "arrival_rate": round(self.arrival_rate, 3),
            "served_rate": round(self.served_rate, 3),
            "capacity_rate": round(self.capacity_rate, 3),
            "shed_ratio": round(self.shed_ratio, 4),
            "replicas_needed": self.replicas_needed,
            "fired_at": self.fired_at,
            "resolved_at": self.resolved_at,
            "summary": self.summary,
            "description": self.description,
        }


def replicas_needed(arrival_rate: float, per_replica_rate: float) -> int | None:
    """More replicas like this one to serve all arrivals (this one counts 1);
    None when a replica serves nothing within the SLA (more would not help)."""
    if per_replica_rate <= 0:
        return 0 if arrival_rate <= 0 else None
    return max(0, math.ceil(arrival_rate / per_replica_rate - _RATIO_EPSILON) - 1)


@dataclass(frozen=True, slots=True)
class _Tick:
    at: float
    arrivals: int
    shed: int
    served: int


class CapacityAlert:
    def __init__(
        self,
        *,
        start: float | None = None,
        shed_ratio: float = 0.1,
        for_seconds: float = 60.0,
        resolve_after: float = 120.0,
        rate_window: float | None = None,
        sla_percentile: float = 0.9,
    ) -> None:
        if not 0 < shed_ratio <= 1 or for_seconds <= 0 or resolve_after <= 0:
            raise ValueError("need 0 < shed_ratio <= 1 and positive durations")
        if not 0 < sla_percentile < 1:
            raise ValueError("sla_percentile must be in (0, 1)")
        self.sla_percentile = sla_percentile
        self.shed_ratio = shed_ratio
        self.for_seconds = for_seconds
        self.resolve_after = resolve_after
        self.rate_window = rate_window if rate_window is not None else min(30.0, for_seconds / 2)
        if self.rate_window <= 0:
            raise ValueError("rate_window must be positive")
        # Rates need the start of the first tick's period; without it the first
        # update only sets the origin and its counts are left out of the rates.
        self._start = start
        self._ticks: deque[_Tick] = deque()
        self._state = AlertState.INACTIVE
        self._since = start if start is not None else 0.0
        self._healthy_since: float | None = None
        self._fired_at: float | None = None
        self._resolved_at: float | None = None
        self._last = self._snapshot(self._since, None, 0.0, 0.0, 0.0, None)

    @property
    def snapshot(self) -> AlertSnapshot:
        """The state as of the last update."""
        return self._last

    def update(
        self,
        now: float,
        *,
        arrivals: int,
        shed: int,
        served_at_sla: int,
        limit: int,
        min_limit: int,
        sla_breached: bool,
        floor: bool = False,
    ) -> AlertSnapshot:
        """Feed one tick: counts since the previous update, the limit and the SLA now."""
        if self._start is None:
            self._start = self._since = now
        else:
            self._ticks.append(_Tick(now, arrivals, shed, served_at_sla))
        while self._ticks and self._ticks[0].at <= now - self.rate_window:
            self._ticks.popleft()
        span = min(self.rate_window, now - self._start)
        total_arrivals = sum(t.arrivals for t in self._ticks)
        total_shed = sum(t.shed for t in self._ticks)
        total_served = sum(t.served for t in self._ticks)
        arrival_rate = total_arrivals / span if span > 0 else 0.0
        served_rate = total_served / span if span > 0 else 0.0
        shed_ratio = total_shed / total_arrivals if total_arrivals > 0 else 0.0

        condition: Condition | None = None
        if shed_ratio > self.shed_ratio:
            condition = Condition.SHEDDING
        elif sla_breached and (floor or limit <= min_limit):
            condition = Condition.FLOOR_BREACH
        self._advance(now, condition)
        self._last = self._snapshot(now, condition, arrival_rate, served_rate, shed_ratio, limit)
        return self._last

    def _advance(self, now: float, condition: Condition | None) -> None:
        state = self._state
        if state in (AlertState.INACTIVE, AlertState.RESOLVED):
            if condition is not None:
                self._enter(AlertState.PENDING, now)
            elif state is AlertState.RESOLVED:
                self._enter(AlertState.INACTIVE, now)
        elif state is AlertState.PENDING:
            if condition is None:
                self._enter(AlertState.INACTIVE, now)
            elif now - self._since >= self.for_seconds:
                self._enter(AlertState.FIRING, now)
                self._fired_at, self._healthy_since = now, None
        elif condition is not None:  # firing and still unhealthy
            self._healthy_since = None
        else:
            if self._healthy_since is None:
                self._healthy_since = now
            if now - self._healthy_since >= self.resolve_after:
                self._enter(AlertState.RESOLVED, now)
                self._resolved_at = now

    def _enter(self, state: AlertState, now: float) -> None:
        self._state, self._since = state, now

    def _snapshot(
        self,
        now: float,
        condition: Condition | None,
        arrival_rate: float,
        served_rate: float,
        shed_ratio: float,
        limit: int | None,
    ) -> AlertSnapshot:
        capacity = served_rate / self.sla_percentile
        more: int | None = 0
        if condition is not None:
            estimate = replicas_needed(arrival_rate, capacity)
            more = None if estimate is None else max(1, estimate)
        rates = (
            f"demand {arrival_rate:.1f} req/s, served within the SLA {served_rate:.1f} req/s "
            f"(one upstream's capacity at the SLA about {capacity:.1f} req/s), "
            f"{shed_ratio:.0%} shed over the last {self.rate_window:g}s"
        )
        if more is None:
            replicas = "replicas needed unknown: nothing is served within the SLA"
        elif more == 0:
            replicas = "no more upstream replicas needed"
        else:
            replicas = f"about {more} more upstream replica{'' if more == 1 else 's'} needed"
        if condition is Condition.FLOOR_BREACH:
            summary = "Upstream misses the SLA whatever the concurrency limit"
            why = f"The SLA is breached at any concurrency (limit {limit})"
        elif condition is Condition.SHEDDING:
            summary = "Demand exceeds what the upstream can serve within the SLA"
            why = f"Shed ratio over {self.shed_ratio:.0%}"
        else:
            summary = "Demand within SLA capacity"
            why = "No capacity problem now"
        return AlertSnapshot(
            state=self._state,
            since=self._since,
            condition=condition,
            arrival_rate=arrival_rate,
            served_rate=served_rate,
            capacity_rate=capacity,
            shed_ratio=shed_ratio,
            replicas_needed=more,
            fired_at=self._fired_at,
            resolved_at=self._resolved_at,
            summary=summary,
            description=f"{why}: {rates}; {replicas}.",
        )
