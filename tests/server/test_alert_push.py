"""The capacity alert reaches Alertmanager's API straight from the proxy: firing
under sustained shedding, resolved once healthy, and an unreachable Alertmanager
never breaks serving."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.server.app import running_proxy
from proxy.settings import Settings
from proxy.sim.app import SimHandle
from tests.helpers.metrics import metric
from tests.helpers.polling import eventually
from tests.helpers.settings import proxy_settings

CHAT = {
    "model": "tiny-llama",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 32,
    "ignore_eos": True,
}

ALERTS: web.AppKey[list[dict[str, Any]]] = web.AppKey("alerts", list)


@pytest.fixture
async def alertmanager() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Stands in for Alertmanager's POST /api/v2/alerts (the real one is exercised by
    tests/deploy); here the point is what the proxy sends and when."""
    app = web.Application()
    received = app[ALERTS] = []

    async def post_alerts(request: web.Request) -> web.Response:
        received.extend(await request.json())
        return web.Response(status=200)

    app.router.add_post("/api/v2/alerts", post_alerts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", received
    finally:
        await runner.cleanup()


async def overload(url: str, stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session:

        async def client() -> None:
            while not stop.is_set():
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(f"{url}/v1/chat/completions", json=CHAT) as r:
                        await r.read()

        await asyncio.gather(*(client() for _ in range(8)))


def shedding_proxy(upstream: str, alertmanager_url: str) -> Settings:
    """One permit, no queue, a capacity alert that fires and resolves within moments."""
    return proxy_settings(
        upstream,
        alertmanager_url=alertmanager_url,
        initial_limit=1,
        min_limit=1,
        max_limit=1,
        queue_size=0,
        alert_for=0.2,
        alert_resolve_after=0.2,
    )


async def test_capacity_alert_fires_and_resolves_through_the_push_path(
    sim: SimHandle, alertmanager: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = alertmanager
    async with running_proxy(shedding_proxy(sim.url, url)) as proxy:
        stop = asyncio.Event()
        load = asyncio.create_task(overload(proxy.url, stop))
        await eventually(lambda: bool(received), within=15, what="firing alert pushed")
        firing = received[0]
        assert firing["labels"]["alertname"] == "SLAProxyCapacityExceeded"
        assert "req/s" in firing["annotations"]["description"]
        stop.set()
        await load
        await eventually(
            lambda: (
                proxy.state.admission.control.last is not None
                and not proxy.state.alert.snapshot.firing
            ),
            within=15,
            what="alert resolved",
        )
        await eventually(lambda: len(received) >= 2, within=5, what="resolution pushed")
        assert received[-1]["startsAt"] == firing["startsAt"]
        # The push is counted once its answer is read, just after the receiver saw it.
        await eventually(
            lambda: metric(proxy.state, "proxy_alertmanager_pushes_total", result="ok") >= 2,
            within=5,
            what="both pushes counted",
        )


async def test_unreachable_alertmanager_never_breaks_serving(sim: SimHandle) -> None:
    async with running_proxy(shedding_proxy(sim.url, "http://127.0.0.1:9")) as proxy:
        stop = asyncio.Event()
        load = asyncio.create_task(overload(proxy.url, stop))
        await eventually(
            lambda: metric(proxy.state, "proxy_alertmanager_pushes_total", result="error") >= 1,
            within=15,
            what="failed push counted",
        )
        stop.set()
        await load
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{proxy.url}/v1/chat/completions", json=CHAT) as response,
        ):
            assert response.status == 200
