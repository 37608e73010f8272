"""The pool's members as Prometheus and /status show them: one `upstream` label value
per member (bounded: members only, never request data), every series created at 0
when the member joins and removed when a drained member leaves."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Counter, Gauge

from proxy.core.ejection import Reason
from proxy.core.outcome import UpstreamErrorKind
from proxy.core.sla import SIGNALS
from proxy.metrics import QUANTILES, Metrics
from proxy.pool import Member, Pool, PoolListener


class MemberMetrics(PoolListener):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def joined(self, member: Member) -> None:
        m, name = self.metrics, member.name
        for kind in UpstreamErrorKind:
            m.upstream_errors.labels(name, kind.value)
        for reason in Reason:
            m.upstream_ejections.labels(name, reason.value)
        m.upstream_requests.labels(name)
        m.upstream_up.labels(name).set(1 if member.up else 0)

    def left(self, member: Member) -> None:
        m, name = self.metrics, member.name
        for kind in UpstreamErrorKind:
            _discard(m.upstream_errors, name, kind.value)
        for reason in Reason:
            _discard(m.upstream_ejections, name, reason.value)
        for family in (m.upstream_requests, m.upstream_up, m.upstream_limit, m.upstream_inflight):
            _discard(family, name)
        for signal in SIGNALS:
            for q in QUANTILES:
                _discard(m.upstream_latency, name, signal, str(q))

    def dispatched(self, member: Member) -> None:
        self.metrics.upstream_requests.labels(member.name).inc()

    def ejected(self, member: Member, reason: Reason) -> None:
        self.metrics.upstream_ejections.labels(member.name, reason.value).inc()
        self.metrics.upstream_up.labels(member.name).set(0)

    def readmitted(self, member: Member) -> None:
        self.metrics.upstream_up.labels(member.name).set(1)


def _discard(family: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set yet
        family.remove(*labels)


def refresh(metrics: Metrics, pool: Pool) -> None:
    """Values read at scrape time."""
    m = metrics
    m.pool_members.set(len(pool.members))
    for member in pool.members:
        name = member.name
        m.upstream_up.labels(name).set(1 if member.up else 0)
        m.upstream_limit.labels(name).set(member.limiter.limit)
        m.upstream_inflight.labels(name).set(member.limiter.inflight)
        for signal, snap in member.control.window_snapshots().items():
            for q in QUANTILES:
                value = snap.percentile(q)
                m.upstream_latency.labels(name, signal, str(q)).set(
                    value if value is not None else float("nan")
                )


def status(pool: Pool) -> list[dict[str, Any]]:
    """The /status "upstreams" list."""
    now = pool.clock()
    out = []
    for member in pool.members:
        snaps = member.control.window_snapshots()
        out.append(
            {
                "name": member.name,
                "url": member.url,
                "up": member.up,
                "ejected_until": member.ejection.remaining(now),
                "limit": member.limiter.limit,
                "inflight": member.limiter.inflight,
                "percentiles": {
                    signal: {f"p{q * 100:g}": snaps[signal].percentile(q) for q in QUANTILES}
                    for signal in SIGNALS
                    if signal in snaps
                },
                "requests": member.requests,
                "draining": member.draining,
            }
        )
    return out
