"""Turns the control loop's state into Prometheus values (level 2 glue: the loop
itself knows nothing of metrics)."""

from __future__ import annotations

from proxy.control import QUANTILES, Tick
from proxy.server.state import ProxyState
from proxy.settings import Priority


def on_tick(state: ProxyState, tick: Tick) -> None:
    metrics = state.metrics
    decision = tick.decision
    if tick.changed:
        metrics.limit_changes.labels(decision.direction.value, decision.cause).inc()
    alert = tick.alert
    metrics.alert_active.set(1 if alert.firing else 0)
    metrics.arrival_rate.set(alert.arrival_rate)
    metrics.served_rate.set(alert.served_rate)
    metrics.replicas_needed.set(
        alert.replicas_needed if alert.replicas_needed is not None else float("nan")
    )
    if state.pusher is not None:
        state.pusher.update(alert.firing, alert.summary, alert.description)
    refresh_gauges(state)


def refresh_gauges(state: ProxyState) -> None:
    """Values read at scrape time and on every tick."""
    metrics, limiter, control = state.metrics, state.limiter, state.control
    metrics.limit.set(limiter.limit)
    metrics.limit_min.set(state.settings.min_limit)
    metrics.limit_max.set(state.settings.max_limit)
    metrics.inflight.set(limiter.inflight)
    metrics.upstream_up.set(1 if state.upstream.up else 0)
    metrics.sla_percentile.set(state.settings.sla_percentile)
    queued = limiter.queued_by_priority()
    for priority in Priority:
        metrics.queue_depth.labels(priority.value).set(queued.get(priority, 0))
    for signal, snap in control.window_snapshots().items():
        for q in QUANTILES:
            value = snap.percentile(q)
            gauge = metrics.window_percentile.labels(signal, str(q))
            gauge.set(value if value is not None else float("nan"))
        target = control.targets.get(signal)
        if target is not None:
            attainment = snap.attainment(target)
            metrics.sla_attainment.labels(signal).set(
                attainment if attainment is not None else float("nan")
            )
