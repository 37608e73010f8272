"""The alert feed counts admission events between ticks and updates the alert once
per tick."""

from __future__ import annotations

from proxy.alerting import AlertFeed
from proxy.control import Tick
from proxy.core.alert import AlertSnapshot, CapacityAlert
from proxy.core.controller import Cause, Decision
from proxy.core.outcome import Outcome, Sample
from proxy.core.sla import Verdict
from proxy.errors import ShedReason
from proxy.limiter import Priority
from tests.helpers.controllers import make_observation


def tick(now: float) -> Tick:
    return Tick(make_observation(now=now, limit=10), Decision(10, Cause.FIXED, "held"), 0.9)


def test_rates_come_from_the_events_between_ticks() -> None:
    feed = AlertFeed(CapacityAlert(start=0.0, for_seconds=10.0), min_limit=1)
    seen: list[AlertSnapshot] = []
    feed.on_update(seen.append)
    for _ in range(10):
        feed.arrived(Priority.NORMAL)
    for _ in range(4):
        feed.shed(Priority.NORMAL, ShedReason.QUEUE_FULL)
    sample = Sample(Outcome.SUCCESS, 200, e2e=0.1)
    for met in (True, True, False):
        feed.finished(sample, Verdict({"e2e": met}))
    feed.finished(Sample(Outcome.OVERLOAD, 503, e2e=0.1), None)
    feed.ticked(tick(1.0))
    assert len(seen) == 1
    assert (seen[0].arrival_rate, seen[0].served_rate, seen[0].shed_ratio) == (10.0, 2.0, 0.4)
    feed.ticked(tick(2.0))  # nothing new: the counts started over
    assert seen[1].arrival_rate == 5.0  # 10 arrivals over the 2 s so far
