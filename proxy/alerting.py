"""The capacity alert, fed by admission and tick events (level 1 glue around the
pure state machine in `core/alert.py`): counts arrivals, sheds and requests served
within the SLA between ticks, and updates the alert once per tick."""

from __future__ import annotations

from collections.abc import Callable

from proxy.admission import Listener
from proxy.control import Tick
from proxy.core.alert import AlertSnapshot, CapacityAlert
from proxy.core.controller import Cause
from proxy.core.outcome import Sample
from proxy.core.sla import Verdict
from proxy.errors import ShedReason
from proxy.limiter import Priority


class AlertFeed(Listener):
    def __init__(self, alert: CapacityAlert, min_limit: int) -> None:
        self.alert = alert
        self.min_limit = min_limit
        self._arrivals = self._shed = self._served = 0
        self._subscribers: list[Callable[[AlertSnapshot], None]] = []

    @property
    def snapshot(self) -> AlertSnapshot:
        return self.alert.snapshot

    def on_update(self, callback: Callable[[AlertSnapshot], None]) -> None:
        self._subscribers.append(callback)

    def arrived(self, priority: Priority) -> None:
        self._arrivals += 1

    def shed(self, priority: Priority, reason: ShedReason) -> None:
        self._shed += 1

    def finished(self, sample: Sample, verdict: Verdict | None) -> None:
        if verdict is not None and verdict.met:
            self._served += 1

    def ticked(self, tick: Tick) -> None:
        snapshot = self.alert.update(
            tick.observation.now,
            arrivals=self._arrivals,
            shed=self._shed,
            served_at_sla=self._served,
            limit=tick.decision.limit,
            min_limit=self.min_limit,
            sla_breached=tick.sla_breached,
            floor=tick.decision.cause is Cause.FLOOR,
        )
        self._arrivals = self._shed = self._served = 0
        for callback in self._subscribers:
            callback(snapshot)
