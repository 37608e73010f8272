"""Per-app state shared by the data port, the admin port and the background tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from proxy.admission import Admission
from proxy.alerting import AlertFeed
from proxy.core.outcome import UpstreamErrorKind
from proxy.metrics import Metrics, MetricsListener
from proxy.server.forwarded import ForwardingPolicy
from proxy.server.shutdown import Drain
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.server.alertmanager import AlertPusher
    from proxy.server.connections import Gate
    from proxy.server.upstream import UpstreamHealth

ADMITTED_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}
)


class ProxyState:
    def __init__(
        self,
        settings: Settings,
        admission: Admission,
        alert: AlertFeed,
        metrics: MetricsListener,
        upstream: UpstreamHealth,
    ) -> None:
        self.settings = settings
        self.admission = admission
        self.alert = alert
        self.metrics = metrics
        self.upstream = upstream
        self.admitted_paths = ADMITTED_PATHS
        self.pusher: AlertPusher | None = None  # while running, with --alertmanager-url
        self.drain = Drain()  # shutting down: finish what is in flight, take nothing new
        self.forwarding = ForwardingPolicy(settings.trusted_proxies)
        self.connections: Gate | None = None  # the data port's, while it listens
        self._session: aiohttp.ClientSession | None = None
        families = metrics.metrics
        self.overhead = families.overhead
        self._errors = {k: families.upstream_errors.labels(k.value) for k in UpstreamErrorKind}

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

    def upstream_error(self, kind: UpstreamErrorKind) -> None:
        self._errors[kind].inc()

    def refresh_gauges(self) -> None:
        """Values read at scrape time."""
        self.metrics.refresh(self.admission)
        self.families.upstream_up.set(1 if self.upstream.up else 0)


STATE: web.AppKey[ProxyState] = web.AppKey("proxy_state", ProxyState)
