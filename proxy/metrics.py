"""Prometheus families of the proxy, built against an injected registry.

Names: `proxy_` prefix, base units. Label values come from closed sets
(outcomes, status classes, shed reasons, priorities, signals, causes), so the
series count is bounded whatever the traffic.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from proxy import __version__

# Latency buckets per signal: wide enough for an 8B model on an H100 and a tiny
# model on a CPU; the SLA target is merged in so attainment is exact from buckets.
_BUCKETS = {
    "ttft": (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 60),
    "tpot": (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1),
    "e2e": (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300),
}
_QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


def buckets_for(signal: str, target: float | None) -> tuple[float, ...]:
    """The signal's buckets with its SLA target included exactly."""
    base = set(_BUCKETS[signal])
    if target is not None:
        base.add(target)
    return tuple(sorted(base))


class Metrics:
    def __init__(
        self, registry: CollectorRegistry, targets: Mapping[str, float] | None = None
    ) -> None:
        targets = dict(targets or {})
        self.registry = registry
        self.limit = Gauge(
            "proxy_concurrency_limit", "Current concurrency limit.", registry=registry
        )
        self.limit_min = Gauge(
            "proxy_concurrency_limit_min", "Floor of the concurrency limit.", registry=registry
        )
        self.limit_max = Gauge(
            "proxy_concurrency_limit_max", "Ceiling of the concurrency limit.", registry=registry
        )
        self.inflight = Gauge(
            "proxy_inflight_requests", "Requests holding a permit.", registry=registry
        )
        self.queue_depth = Gauge(
            "proxy_queue_depth", "Requests waiting for a permit.", ["priority"], registry=registry
        )
        self.queue_wait = Histogram(
            "proxy_queue_wait_seconds",
            "Time admitted requests spent queued.",
            ["priority"],
            buckets=_QUEUE_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "proxy_requests",
            "Finished forwarded requests by outcome and HTTP status class.",
            ["outcome", "status_class"],
            registry=registry,
        )
        self.arrivals = Counter(
            "proxy_arrivals", "Requests that asked for admission.", ["priority"], registry=registry
        )
        self.shed = Counter(
            "proxy_shed", "Requests refused with 429.", ["reason", "priority"], registry=registry
        )
        self.limit_changes = Counter(
            "proxy_limit_changes",
            "Controller decisions that moved the limit.",
            ["direction", "cause"],
            registry=registry,
        )
        self.upstream_errors = Counter(
            "proxy_upstream_errors",
            "Upstream failures by kind.",
            ["kind"],
            registry=registry,
        )
        self.upstream_up = Gauge(
            "proxy_upstream_up", "1 while the upstream is reachable.", registry=registry
        )
        self.cancellations = Counter(
            "proxy_client_cancellations",
            "Clients that went away, by the phase they left in.",
            ["phase"],
            registry=registry,
        )
        self.tokens = Counter(
            "proxy_tokens", "Tokens reported by the upstream's usage.", ["kind"], registry=registry
        )
        self.latency = {
            signal: Histogram(
                f"proxy_{signal}_seconds",
                f"{signal.upper()} of successful requests.",
                buckets=buckets_for(signal, targets.get(signal)),
                registry=registry,
            )
            for signal in _BUCKETS
        }
        self.sla_target = Gauge(
            "proxy_sla_target_seconds", "SLA target per signal.", ["signal"], registry=registry
        )
        self.sla_percentile = Gauge(
            "proxy_sla_percentile", "The percentile the SLA targets apply to.", registry=registry
        )
        self.window_percentile = Gauge(
            "proxy_window_latency_seconds",
            "Rolling-window latency percentile per signal.",
            ["signal", "quantile"],
            registry=registry,
        )
        self.sla_requests = Counter(
            "proxy_sla_requests",
            "Successful requests checked against each SLA target ('all' = every target).",
            ["signal", "result"],
            registry=registry,
        )
        self.sla_attainment = Gauge(
            "proxy_sla_attainment_ratio",
            "Fraction of the window's samples within target per signal.",
            ["signal"],
            registry=registry,
        )
        self.overhead = Histogram(
            "proxy_overhead_seconds",
            "Time the proxy adds before the request goes upstream (queueing excluded).",
            buckets=_OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.alert_active = Gauge(
            "proxy_capacity_alert_active", "1 while the capacity alert fires.", registry=registry
        )
        self.arrival_rate = Gauge(
            "proxy_arrival_rate", "Requests per second asking for admission.", registry=registry
        )
        self.served_rate = Gauge(
            "proxy_served_at_sla_rate",
            "Requests per second served within every SLA target.",
            registry=registry,
        )
        self.replicas_needed = Gauge(
            "proxy_capacity_replicas_needed",
            "Estimated upstream replicas needed for the current demand.",
            registry=registry,
        )
        self.alertmanager_pushes = Counter(
            "proxy_alertmanager_pushes",
            "Pushes of the capacity alert to Alertmanager by result.",
            ["result"],
            registry=registry,
        )
        self.build_info = Info("proxy_build", "Version of the proxy.", registry=registry)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        for signal, target in targets.items():
            self.sla_target.labels(signal).set(target)
