"""Prometheus families of the proxy, built against an injected registry, and the
listener that keeps them current from admission and tick events.

Names: `proxy_` prefix, base units. Label values come from closed sets
(outcomes, status classes, shed reasons, priorities, signals, causes), so the
series count is bounded whatever the traffic; every known series is exported at 0
from the start (Prometheus' instrumentation guidance), so `rate()`, ratios and
alerts work from the first scrape.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from proxy import __version__
from proxy.admission import Listener
from proxy.control import Tick
from proxy.core.alert import AlertSnapshot
from proxy.core.controller import Cause, Direction
from proxy.core.outcome import Outcome, Sample
from proxy.core.sla import SIGNALS, Verdict
from proxy.core.window import WindowSnapshot
from proxy.errors import ShedReason
from proxy.limiter import Priority

QUANTILES = (0.5, 0.9, 0.99)  # the window percentiles exported and shown in /status
STATUS_CLASSES = ("2xx", "4xx", "5xx", "none")
CANCEL_PHASES = ("queued", "before_first_token", "streaming")
ALERTMANAGER_RESULTS = ("ok", "error")

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
        self,
        registry: CollectorRegistry,
        targets: Mapping[str, float] | None = None,
        *,
        percentile: float = 0.9,
        limit_bounds: tuple[int, int] = (1, 256),
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
            "Upstream failures by pool member and kind.",
            ["upstream", "kind"],
            registry=registry,
        )
        self.upstream_up = Gauge(
            "proxy_upstream_up",
            "1 while the pool member is in rotation, 0 while ejected or down.",
            ["upstream"],
            registry=registry,
        )
        self.upstream_limit = Gauge(
            "proxy_upstream_concurrency_limit",
            "Concurrency limit of each pool member.",
            ["upstream"],
            registry=registry,
        )
        self.upstream_inflight = Gauge(
            "proxy_upstream_inflight_requests",
            "Requests in flight on each pool member.",
            ["upstream"],
            registry=registry,
        )
        self.upstream_latency = Gauge(
            "proxy_upstream_latency_seconds",
            "Rolling-window latency percentile per pool member and signal.",
            ["upstream", "signal", "quantile"],
            registry=registry,
        )
        self.upstream_ejections = Counter(
            "proxy_upstream_ejections",
            "Times a pool member was taken out of rotation, by reason.",
            ["upstream", "reason"],
            registry=registry,
        )
        self.upstream_requests = Counter(
            "proxy_upstream_requests",
            "Requests sent to each pool member.",
            ["upstream"],
            registry=registry,
        )
        self.pool_members = Gauge(
            "proxy_pool_members", "Pool members known (in rotation or not).", registry=registry
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
        self.sla_percentile.set(percentile)
        self.limit_min.set(limit_bounds[0])
        self.limit_max.set(limit_bounds[1])
        self._zero(targets)

    def _zero(self, targets: Mapping[str, float]) -> None:
        """Create every series whose label values are known, at 0."""
        for priority in Priority:
            self.arrivals.labels(priority.value)
            self.queue_depth.labels(priority.value)
            self.queue_wait.labels(priority.value)
            for reason in ShedReason:
                self.shed.labels(reason.value, priority.value)
        for outcome in Outcome:
            for status_class in STATUS_CLASSES:
                self.requests.labels(outcome.value, status_class)
        for direction in (Direction.UP, Direction.DOWN):
            for cause in Cause:
                self.limit_changes.labels(direction.value, cause.value)
        for phase in CANCEL_PHASES:
            self.cancellations.labels(phase)
        for token_kind in ("prompt", "completion"):
            self.tokens.labels(token_kind)
        for signal in (*targets, "all"):
            for result in ("met", "missed"):
                self.sla_requests.labels(signal, result)
        for result in ALERTMANAGER_RESULTS:
            self.alertmanager_pushes.labels(result)


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status is not None else "none"


class MetricsListener(Listener):
    """Admission and tick events into the Prometheus families (label children are
    bound once here, not looked up per request)."""

    def __init__(self, metrics: Metrics, targets: Mapping[str, float]) -> None:
        self.metrics = metrics
        m = metrics
        self._arrivals = {p: m.arrivals.labels(p.value) for p in Priority}
        self._queue_wait = {p: m.queue_wait.labels(p.value) for p in Priority}
        self._shed = {(r, p): m.shed.labels(r.value, p.value) for r in ShedReason for p in Priority}
        self._abandoned = m.cancellations.labels("queued")
        self._left_before_first = m.cancellations.labels("before_first_token")
        self._left_streaming = m.cancellations.labels("streaming")
        self._requests = {
            (o, c): m.requests.labels(o.value, c) for o in Outcome for c in STATUS_CLASSES
        }
        self._completion_tokens = m.tokens.labels("completion")
        self._prompt_tokens = m.tokens.labels("prompt")
        self._latency = [(signal, m.latency[signal]) for signal in SIGNALS]
        self._sla = {
            (signal, met): m.sla_requests.labels(signal, "met" if met else "missed")
            for signal in (*targets, "all")
            for met in (True, False)
        }

    def arrived(self, priority: Priority) -> None:
        self._arrivals[priority].inc()

    def shed(self, priority: Priority, reason: ShedReason) -> None:
        self._shed[reason, priority].inc()

    def admitted(self, priority: Priority, queued: float) -> None:
        self._queue_wait[priority].observe(queued)

    def abandoned(self, priority: Priority) -> None:
        self._abandoned.inc()

    def finished(self, sample: Sample, verdict: Verdict | None) -> None:
        self._requests[sample.outcome, status_class(sample.status)].inc()
        if sample.output_tokens is not None:
            self._completion_tokens.inc(sample.output_tokens)
        if sample.prompt_tokens is not None:
            self._prompt_tokens.inc(sample.prompt_tokens)
        if sample.client_left:
            left = self._left_streaming if sample.ttft is not None else self._left_before_first
            left.inc()
        if verdict is None:
            return
        for signal, histogram in self._latency:
            value = sample.signal(signal)
            if value is not None:
                histogram.observe(value)
        for signal, met in verdict.signals.items():
            if met is not None:
                self._sla[signal, met].inc()
        self._sla["all", verdict.met].inc()

    def ticked(self, tick: Tick) -> None:
        if tick.changed:
            self.metrics.limit_changes.labels(tick.direction.value, tick.decision.cause).inc()

    def refresh(
        self,
        limit: int,
        inflight: int,
        queued: Mapping[Priority, int],
        snapshots: Mapping[str, WindowSnapshot],
        targets: Mapping[str, float],
    ) -> None:
        """Values read at scrape time (the pool as a whole: the clients' view)."""
        m = self.metrics
        m.limit.set(limit)
        m.inflight.set(inflight)
        for priority, count in queued.items():
            m.queue_depth.labels(priority.value).set(count)
        for signal, snap in snapshots.items():
            for q in QUANTILES:
                value = snap.percentile(q)
                m.window_percentile.labels(signal, str(q)).set(
                    value if value is not None else float("nan")
                )
            target = targets.get(signal)
            if target is not None:
                attainment = snap.attainment(target)
                m.sla_attainment.labels(signal).set(
                    attainment if attainment is not None else float("nan")
                )

    def alert_updated(self, alert: AlertSnapshot) -> None:
        m = self.metrics
        m.alert_active.set(1 if alert.firing else 0)
        m.arrival_rate.set(alert.arrival_rate)
        m.served_rate.set(alert.served_rate)
        m.replicas_needed.set(
            alert.replicas_needed if alert.replicas_needed is not None else float("nan")
        )
