"""Admin port: what operators and orchestrators ask the proxy about itself."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.core.ejection import Event
from proxy.core.sla import SIGNALS
from proxy.metrics import QUANTILES
from proxy.pool import Member
from proxy.server import members
from proxy.server.errors import SERVER, error_middleware, json_error
from proxy.server.page import live_page
from proxy.server.state import STATE, ProxyState

# Readiness: an upstream answer this recent counts; older, and /readyz asks it itself.
_RECENT_SECONDS = 10.0


def create_admin_app(state: ProxyState) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[STATE] = state
    app.router.add_get("/", live_page)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/{tail:.*}", not_found)
    app.on_response_prepare.append(_server_header)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER  # the name, not aiohttp's version


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.refresh_gauges()
    body = generate_latest(state.families.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.Response(
        text=json.dumps(status_of(state), indent=2), content_type="application/json"
    )


def _label(q: float) -> str:
    return f"p{q * 100:g}"


def status_of(state: ProxyState) -> dict[str, Any]:
    """The /status document: the limit, the queue, the window per signal, the last
    decision and the alert."""
    settings, pool = state.settings, state.pool
    limiter, sla = pool.limiter, pool.sla
    targets = sla.targets
    signals = {}
    for name, snap in pool.window_snapshots().items():
        target = targets.get(name)
        signals[name] = {
            **{_label(q): snap.percentile(q) for q in QUANTILES},
            "at_sla_percentile": snap.percentile(sla.percentile),
            "target": target,
            "attainment": snap.attainment(target) if target is not None else None,
            "samples": snap.count,
        }
    last = pool.last
    return {
        "time": time.time(),  # when this was read: the live page's clock and shed rate
        "limit": pool.limit,
        "inflight": pool.inflight,
        "queued": limiter.queued,
        "queued_by_priority": {p.value: n for p, n in limiter.queued_by_priority().items()},
        "epoch": limiter.epoch,
        "shed_total": _shed_total(state),
        "algorithm": settings.algorithm.value,
        "bounds": {"min": settings.min_limit, "max": settings.max_limit},
        "sla_percentile": sla.percentile,
        "signals": {name: signals[name] for name in SIGNALS},
        "last_decision": None
        if last is None
        else {
            "direction": last.direction.value,
            "cause": last.decision.cause.value,
            "reason": last.decision.reason,
            "from": last.previous_limit,
            "to": last.decision.limit,
            "details": dict(last.decision.details),
        },
        "alert": None if last is None else state.alert.snapshot.as_dict(),
        "connections": None
        if state.connections is None
        else {
            "open": state.connections.open,
            "max": state.connections.limit,
            "refused": state.connections.refused,
        },
        "draining": state.draining,
        "upstreams": members.status(pool),
    }


def _shed_total(state: ProxyState) -> int:
    """Every 429 since start (all reasons and priorities), as /metrics counts them."""
    shed = state.families.shed.collect()
    return int(sum(s.value for f in shed for s in f.samples if s.name.endswith("_total")))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    pool = state.pool
    serving = [m for m in pool.members if m.serving]
    now = pool.clock()
    ready = (
        not state.draining
        and bool(serving)
        and (
            any(m.last_ok is not None and now - m.last_ok <= _RECENT_SECONDS for m in serving)
            or await _probe(state, serving[0])
        )
    )
    body = {
        "ready": ready,
        "draining": state.draining,
        "upstream": state.settings.upstream_base,
        "upstream_up": bool(serving),
        "upstreams_serving": len(serving),
    }
    return web.json_response(body, status=200 if ready else 503)


async def _probe(state: ProxyState, member: Member) -> bool:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
        async with state.session.get(
            f"{member.url}/health",
            timeout=aiohttp.ClientTimeout(total=2.0),
        ) as response:
            if response.status < 500:
                state.pool.record(member, Event.ANSWERED)
                return True
    return False


async def not_found(request: web.Request) -> web.Response:
    return json_error(
        404,
        "No such admin route; try / /metrics /status /healthz /readyz.",
        "invalid_request_error",
        "not_found",
    )
