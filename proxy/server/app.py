"""App factory: the data app (everything forwarded upstream) and the admin app
(/metrics, /status, /healthz, /readyz) share one ProxyState."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy import factory
from proxy.metrics import Metrics, MetricsListener
from proxy.server import admin, forward
from proxy.server.alertmanager import AlertmanagerClient, AlertPusher
from proxy.server.errors import ProxyRunner, error_middleware
from proxy.server.state import STATE, ProxyState
from proxy.server.upstream import UpstreamHealth
from proxy.settings import Settings


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> web.Application:
    targets = settings.sla_targets()
    families = Metrics(
        registry or CollectorRegistry(),
        targets,
        percentile=settings.sla_percentile,
        limit_bounds=(settings.min_limit, settings.max_limit),
    )
    admission, alert = factory.admission(settings)
    metrics = MetricsListener(families, targets)
    admission.subscribe(metrics)
    alert.on_update(metrics.alert_updated)
    state = ProxyState(
        settings,
        admission,
        alert,
        metrics,
        UpstreamHealth(settings.upstream_down_after, settings.upstream_probe_interval),
    )
    # client_max_size is enforced by forward.read_body with a JSON 413; aiohttp's own
    # check would only apply to request.read(), which the proxy does not use.
    app = web.Application(middlewares=[error_middleware])
    app[STATE] = state
    app.cleanup_ctx.append(_background)
    app.router.add_route("*", "/{tail:.*}", forward.handle)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """One pooled keep-alive session per app; the control loop and the upstream probe."""
    state = app[STATE]
    settings = state.settings
    connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, connect=None, sock_read=None
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )
    state._session = session
    if settings.alertmanager_url is not None:
        pusher = state.pusher = _pusher(state, session, str(settings.alertmanager_url))
        state.alert.on_update(
            lambda alert: pusher.update(alert.firing, alert.summary, alert.description)
        )
    tasks = [
        asyncio.create_task(state.admission.run(), name="control-loop"),
        asyncio.create_task(
            state.upstream.probe_forever(session, settings.upstream_base), name="upstream-probe"
        ),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if state.pusher is not None:
            await state.pusher.aclose()
            state.pusher = None
        await session.close()
        state._session = None


def _pusher(state: ProxyState, session: aiohttp.ClientSession, url: str) -> AlertPusher:
    settings, pushes = state.settings, state.families.alertmanager_pushes
    client = AlertmanagerClient(session, url, on_result=lambda result: pushes.labels(result).inc())
    return AlertPusher(
        client,
        # The admin address: what Prometheus calls this proxy, so the pushed alert and
        # the rule-evaluated one group and inhibit together in Alertmanager.
        labels={
            "instance": f"{settings.host}:{settings.admin_port}",
            "upstream": settings.upstream_base,
        },
        generator_url=f"http://{settings.host}:{settings.admin_port}/status",
    )


@dataclass(frozen=True)
class RunningProxy:
    state: ProxyState
    url: str  # data port, e.g. http://127.0.0.1:8080
    admin_url: str


@asynccontextmanager
async def running_proxy(
    settings: Settings, registry: CollectorRegistry | None = None
) -> AsyncIterator[RunningProxy]:
    """Serve both ports until the block ends (port 0 picks free ports: for tests)."""
    app = create_app(settings, registry)
    state = app[STATE]
    runners = [
        ProxyRunner(app, shutdown_timeout=settings.shutdown_timeout),
        ProxyRunner(admin.create_admin_app(state), shutdown_timeout=1.0),
    ]
    try:
        ports = []
        for runner, port in zip(runners, (settings.port, settings.admin_port), strict=True):
            await runner.setup()
            site = web.TCPSite(runner, settings.host, port, reuse_address=True)
            await site.start()
            ports.append(int(runner.addresses[-1][1]))
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        yield RunningProxy(state, f"http://{host}:{ports[0]}", f"http://{host}:{ports[1]}")
    finally:
        # The data port first: admin keeps answering (readyz 503) while it drains.
        for runner in runners:
            await runner.cleanup()
