"""Admin port: what operators and orchestrators ask the proxy about itself."""

from __future__ import annotations

import contextlib
import json

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.server import telemetry
from proxy.server.errors import error_middleware, json_error
from proxy.server.state import STATE, ProxyState

# Readiness: an upstream answer this recent counts; older, and /readyz asks it itself.
_RECENT_SECONDS = 10.0


def create_admin_app(state: ProxyState) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[STATE] = state
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    telemetry.refresh_gauges(state)
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.Response(
        text=json.dumps(state.control.status(), indent=2), content_type="application/json"
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ready = (
        not state.draining
        and state.upstream.up
        and (state.upstream.answered_within(_RECENT_SECONDS) or await _probe(state))
    )
    body = {
        "ready": ready,
        "draining": state.draining,
        "upstream": state.settings.upstream_base,
        "upstream_up": state.upstream.up,
    }
    return web.json_response(body, status=200 if ready else 503)


async def _probe(state: ProxyState) -> bool:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
        async with state.session.get(
            f"{state.settings.upstream_base}/health",
            timeout=aiohttp.ClientTimeout(total=2.0),
        ) as response:
            if response.status < 500:
                state.upstream.record_ok()
                return True
    return False


async def not_found(request: web.Request) -> web.Response:
    return json_error(
        404,
        f"No admin route {request.method} {request.path}; try /metrics /status /healthz /readyz.",
        "invalid_request_error",
        "not_found",
    )
