"""Per-app state shared by the data port, the admin port and the background tasks."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from proxy.admission import Admission
from proxy.alerting import AlertFeed
from proxy.core.outcome import UpstreamErrorKind
from proxy.metrics import Metrics, MetricsListener
from proxy.pool import Member, Pool
from proxy.server import members
from proxy.server.forwarded import ForwardingPolicy
from proxy.server.shutdown import Drain
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.server.alertmanager import AlertPusher
    from proxy.server.connections import Gate
    from proxy.server.upstream import UpstreamHealth

# The pool member the running handler's request went to: what an upstream error counts
# against, wherever in the relay it is found.
CURRENT_MEMBER: ContextVar[Member | None] = ContextVar("current_member", default=None)

ADMITTED_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}
)


class ProxyState:
    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        metrics: MetricsListener,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.alert: AlertFeed = pool.alert
        self.metrics = metrics
        self.admitted_paths = ADMITTED_PATHS
        self.pusher: AlertPusher | None = None  # while running, with --alertmanager-url
        self.drain = Drain()  # shutting down: finish what is in flight, take nothing new
        self.forwarding = ForwardingPolicy(settings.trusted_proxies)
        self.connections: Gate | None = None  # the data port's, while it listens
        self._session: aiohttp.ClientSession | None = None
        families = metrics.metrics
        self.overhead = families.overhead

    @property
    def admission(self) -> Admission:
        """One upstream's admission (a pool's first member's: see `pool` for the rest)."""
        return self.pool.members[0].admission

    @property
    def upstream(self) -> UpstreamHealth:
        """The first member's health, as one upstream's."""
        from proxy.server.upstream import UpstreamHealth

        return UpstreamHealth(self.pool, self.pool.members[0])

    @property
    def draining(self) -> bool:
        return self.drain.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.drain.draining = value

    @property
    def families(self) -> Metrics:
        return self.metrics.metrics

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the upstream session exists only while the app runs")
        return self._session

    def upstream_error(self, kind: UpstreamErrorKind, member: Member | None = None) -> None:
        """Counted against `member`, else the member the running request went to."""
        member = member or CURRENT_MEMBER.get()
        if member is not None:
            self.families.upstream_errors.labels(member.name, kind.value).inc()

    def refresh_gauges(self) -> None:
        """Values read at scrape time."""
        pool = self.pool
        self.metrics.refresh(
            pool.limit,
            pool.inflight,
            pool.limiter.queued_by_priority(),
            pool.window_snapshots(),
            pool.sla.targets,
        )
        members.refresh(self.families, pool)


STATE: web.AppKey[ProxyState] = web.AppKey("proxy_state", ProxyState)
