"""App factory: the data app (everything forwarded upstream) and the admin app
(/metrics, /status, /healthz, /readyz) share one ProxyState; `running_proxy` serves
both, with the client limits of `connections.py` and the drain of `shutdown.py`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.metrics import Metrics, MetricsListener
from proxy.pool import Pool, Resolver
from proxy.server import admin, forward
from proxy.server.alertmanager import AlertmanagerClient, AlertPusher
from proxy.server.connections import ClientLimits, ProxyRunner
from proxy.server.errors import error_middleware
from proxy.server.members import MemberMetrics
from proxy.server.state import STATE, ProxyState
from proxy.server.upstream import prober, system_resolver
from proxy.settings import Settings

RESOLVER: web.AppKey[Resolver] = web.AppKey("resolver")


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    resolver: Resolver | None = None,
) -> web.Application:
    """`resolver`: the address look-up of DNS discovery (the host's by default; tests
    inject their own)."""
    targets = settings.sla_targets()
    families = Metrics(
        registry or CollectorRegistry(),
        targets,
        percentile=settings.sla_percentile,
        limit_bounds=(settings.min_limit, settings.max_limit),
    )
    pool = Pool(settings, time.perf_counter)
    metrics = MetricsListener(families, targets)
    pool.subscribe(metrics)
    pool.watch(MemberMetrics(families))
    pool.alert.on_update(metrics.alert_updated)
    state = ProxyState(settings, pool, metrics)
    # client_max_size is enforced by forward.read_body with a JSON 413; aiohttp's own
    # check would only apply to request.read(), which the proxy does not use.
    app = web.Application(middlewares=[error_middleware])
    app[STATE] = state
    app[RESOLVER] = resolver or system_resolver()
    app.cleanup_ctx.append(_background)
    app.on_response_prepare.append(_last_headers)
    # [\s\S], not ".": a path whose escapes decode to a newline must reach the handler
    # (and its 400), not end as the router's 404.
    app.router.add_route("*", r"/{tail:[\s\S]*}", forward.handle)
    return app


async def _last_headers(request: web.Request, response: web.StreamResponse) -> None:
    """While draining, every answer closes its connection, so clients move on to
    another replica."""
    if request.app[STATE].draining:
        response.force_close()  # the hook runs after aiohttp chose the Connection header
        response.headers["Connection"] = "close"


async def _background(app: web.Application) -> AsyncIterator[None]:
    """One pooled keep-alive session per app; the control loop and the upstream probe."""
    state = app[STATE]
    settings = state.settings
    connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, connect=None, sock_read=None
    )
    # Requests ask for `identity`; an upstream that compresses anyway is decoded here,
    # so usage can be read and the client gets a body its headers describe. No cookie
    # jar: the session is shared by every client, so an upstream's Set-Cookie must go
    # back to its client only (it does, in the relayed headers), never be replayed on
    # other clients' requests; and filtering a jar costs on every request.
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
    )
    state._session = session
    if settings.alertmanager_url is not None:
        pusher = state.pusher = _pusher(state, session, str(settings.alertmanager_url))
        state.alert.on_update(
            lambda alert: pusher.update(alert.firing, alert.summary, alert.description)
        )
    pool = state.pool
    probe = prober(lambda: state.session, settings.upstream_probe_interval)
    tasks = [
        asyncio.create_task(pool.run(), name="control-loop"),
        asyncio.create_task(
            pool.probe_forever(probe, settings.upstream_probe_interval), name="upstream-probe"
        ),
    ]
    if pool.sources:
        await pool.resolve_once(app[RESOLVER])  # the first members before the first request
        tasks.append(
            asyncio.create_task(pool.resolve_forever(app[RESOLVER]), name="upstream-resolve")
        )
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


# After the drain, what is still open is idle or stuck on a client that does not read:
# aiohttp waits this long for it, twice (its handler, then its cancellation).
_CLOSE_TIMEOUT = 0.2
_BACKLOG = 1024  # a burst of connections waits in the kernel rather than being dropped
_ADMIN_CONNECTIONS = 256  # operators and probes; a cap keeps a flood off the data port's fds


@dataclass(frozen=True)
class RunningProxy:
    state: ProxyState
    url: str  # data port, e.g. http://127.0.0.1:8080
    admin_url: str

    async def drain(self, within: float, force: asyncio.Event | None = None) -> None:
        """Stop taking requests (503, /readyz 503), give those in flight until `within`
        seconds from now (or until `force` is set), cut the rest. Leaving the
        `running_proxy` block afterwards closes the ports."""
        await self.state.drain.run(within, force)


@asynccontextmanager
async def running_proxy(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    resolver: Resolver | None = None,
) -> AsyncIterator[RunningProxy]:
    """Serve both ports until the block ends (port 0 picks free ports: for tests)."""
    app = create_app(settings, registry, resolver=resolver)
    state = app[STATE]
    data_limits = ClientLimits(
        header_timeout=settings.client_header_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        max_connections=settings.max_connections,
    )
    admin_limits = ClientLimits(
        settings.client_header_timeout, settings.keepalive_timeout, _ADMIN_CONNECTIONS
    )
    runners = [
        ProxyRunner(app, data_limits, shutdown_timeout=_CLOSE_TIMEOUT),
        ProxyRunner(admin.create_admin_app(state), admin_limits, shutdown_timeout=_CLOSE_TIMEOUT),
    ]
    try:
        ports = []
        for runner, port in zip(runners, (settings.port, settings.admin_port), strict=True):
            await runner.setup()
            site = web.TCPSite(runner, settings.host, port, reuse_address=True, backlog=_BACKLOG)
            await site.start()
            ports.append(int(runner.addresses[-1][1]))
        state.connections = runners[0].gate
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        yield RunningProxy(state, f"http://{host}:{ports[0]}", f"http://{host}:{ports[1]}")
    finally:
        # The data port first: admin keeps answering (readyz 503) while it drains.
        for runner in runners:
            await runner.cleanup()
