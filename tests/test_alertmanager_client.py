"""The Alertmanager push client against a tiny fake, and the pusher's firing/re-send/
resolve behaviour with an injected clock. The real binary: tests/deploy/."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.server.alertmanager import (
    ALERT_NAME,
    AlertmanagerClient,
    AlertPayload,
    AlertPusher,
    alerts_url,
)

START = datetime(2026, 11, 28, 6, 0, 0, tzinfo=UTC)


@dataclass
class FakeAlertmanager:
    """Records posted alerts; answers `status`, or hangs until `release` is set."""

    status: int = 200
    hang: bool = False
    received: list[list[dict[str, Any]]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.hang:
            await self.release.wait()
        self.received.append(body)
        return web.json_response({}, status=self.status)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAlertmanager, str]]:
    am = FakeAlertmanager()
    app = web.Application()
    app.router.add_post("/api/v2/alerts", am.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield am, str(server.make_url(""))
    finally:
        am.release.set()
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def _payload(ends_at: datetime | None = None) -> AlertPayload:
    return AlertPayload(
        labels={"alertname": ALERT_NAME, "severity": "critical", "instance": "p:9464"},
        annotations={"summary": "s", "description": "d"},
        starts_at=START,
        ends_at=ends_at,
        generator_url="http://p:9464/status",
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- the client -------------------------------------------------------------------------


def test_alerts_url_accepts_base_or_full_api_url() -> None:
    assert alerts_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts_url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert alerts_url("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"


def test_payload_is_a_postable_alert_with_rfc3339_times() -> None:
    body = _payload(ends_at=START + timedelta(minutes=1)).to_json()
    assert body == {
        "labels": {"alertname": ALERT_NAME, "severity": "critical", "instance": "p:9464"},
        "annotations": {"summary": "s", "description": "d"},
        "startsAt": "2026-11-28T06:00:00.000Z",
        "endsAt": "2026-11-28T06:01:00.000Z",
        "generatorURL": "http://p:9464/status",
    }


def test_payload_end_is_never_before_its_start() -> None:
    body = _payload(ends_at=START - timedelta(seconds=5)).to_json()
    assert body["endsAt"] > body["startsAt"]


async def test_push_posts_the_alert_and_counts_ok(
    fake: tuple[FakeAlertmanager, str], session: aiohttp.ClientSession
) -> None:
    am, url = fake
    results: list[str] = []
    client = AlertmanagerClient(session, url, timeout=5, on_result=results.append)
    assert await client.push(_payload()) is True
    assert am.received == [[_payload().to_json()]]
    assert results == ["ok"]


async def test_push_reports_an_http_error_without_raising(
    fake: tuple[FakeAlertmanager, str], session: aiohttp.ClientSession
) -> None:
    am, url = fake
    am.status = 400
    results: list[str] = []
    client = AlertmanagerClient(session, url, timeout=5, on_result=results.append)
    assert await client.push(_payload()) is False
    assert results == ["error"]


async def test_push_to_an_unreachable_alertmanager_returns_false(
    session: aiohttp.ClientSession,
) -> None:
    results: list[str] = []
    client = AlertmanagerClient(
        session, f"http://127.0.0.1:{_closed_port()}", timeout=5, on_result=results.append
    )
    assert await client.push(_payload()) is False
    assert results == ["error"]


async def test_push_gives_up_on_a_hanging_alertmanager_after_its_timeout(
    fake: tuple[FakeAlertmanager, str], session: aiohttp.ClientSession
) -> None:
    am, url = fake
    am.hang = True
    client = AlertmanagerClient(session, url, timeout=0.05)
    assert await client.push(_payload()) is False


async def test_failures_are_logged_once_per_change(
    fake: tuple[FakeAlertmanager, str],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    am, url = fake
    client = AlertmanagerClient(session, url, timeout=5)
    caplog.set_level(logging.INFO, logger="sla_proxy.alertmanager")
    am.status = 500
    for _ in range(3):
        await client.push(_payload())
    am.status = 200
    for _ in range(2):
        await client.push(_payload())
    levels = [record.levelname for record in caplog.records]
    assert levels == ["WARNING", "INFO"]


# --- the pusher ------------------------------------------------------------------------


@dataclass
class RecordingClient:
    """Stands in for AlertmanagerClient: records pushes, answers `ok`, can be held."""

    ok: bool = True
    held: bool = False
    pushes: list[AlertPayload] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def push(self, alert: AlertPayload) -> bool:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.held:
                await self.gate.wait()
            self.pushes.append(alert)
            return self.ok
        finally:
            self.in_flight -= 1


@dataclass
class Clocks:
    now: float = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return START + timedelta(seconds=self.now)


def _pusher(client: RecordingClient, clocks: Clocks) -> AlertPusher:
    return AlertPusher(
        client,
        labels={"instance": "p:9464"},
        generator_url="http://p:9464/status",
        resend_interval=60,
        clock=clocks.monotonic,
        wall_clock=clocks.wall,
    )


async def _tick(pusher: AlertPusher, clocks: Clocks, at: float, active: bool) -> None:
    clocks.now = at
    pusher.update(active, "demand exceeds capacity", f"t={at}")
    await pusher.wait_idle()


async def test_pusher_sends_firing_alert_with_labels_and_annotations() -> None:
    client, clocks = RecordingClient(), Clocks()
    await _tick(_pusher(client, clocks), clocks, 0, active=True)
    (alert,) = client.pushes
    assert alert.labels == {"instance": "p:9464", "alertname": ALERT_NAME, "severity": "critical"}
    assert alert.annotations == {"summary": "demand exceeds capacity", "description": "t=0"}
    assert alert.starts_at == START
    assert alert.generator_url == "http://p:9464/status"
    # ahead of now, so Alertmanager resolves it by itself if the proxy disappears
    assert alert.ends_at is not None and alert.ends_at > START


async def test_pusher_sends_nothing_while_inactive() -> None:
    client, clocks = RecordingClient(), Clocks()
    pusher = _pusher(client, clocks)
    for at in (0, 60, 120):
        await _tick(pusher, clocks, at, active=False)
    assert client.pushes == []


async def test_pusher_resends_only_every_interval_while_active() -> None:
    client, clocks = RecordingClient(), Clocks()
    pusher = _pusher(client, clocks)
    for at in (0, 1, 30, 59, 60, 61, 119, 120):
        await _tick(pusher, clocks, at, active=True)
    assert [alert.annotations["description"] for alert in client.pushes] == [
        "t=0",
        "t=60",
        "t=120",
    ]
    assert {alert.starts_at for alert in client.pushes} == {START}


async def test_pusher_sends_ends_at_once_when_resolved() -> None:
    client, clocks = RecordingClient(), Clocks()
    pusher = _pusher(client, clocks)
    await _tick(pusher, clocks, 0, active=True)
    for at in (5, 6, 70, 200):
        await _tick(pusher, clocks, at, active=False)
    assert len(client.pushes) == 2
    resolved = client.pushes[1]
    assert resolved.starts_at == START
    assert resolved.ends_at == START + timedelta(seconds=5)


async def test_pusher_retries_a_failed_resolution_when_due() -> None:
    client, clocks = RecordingClient(ok=False), Clocks()
    pusher = _pusher(client, clocks)
    await _tick(pusher, clocks, 0, active=True)
    await _tick(pusher, clocks, 5, active=False)
    await _tick(pusher, clocks, 10, active=False)
    client.ok = True
    await _tick(pusher, clocks, 65, active=False)
    await _tick(pusher, clocks, 200, active=False)
    assert [alert.annotations["description"] for alert in client.pushes] == [
        "t=0",
        "t=5",
        "t=65",
    ]


async def test_pusher_starts_a_new_episode_after_resolution() -> None:
    client, clocks = RecordingClient(), Clocks()
    pusher = _pusher(client, clocks)
    await _tick(pusher, clocks, 0, active=True)
    await _tick(pusher, clocks, 10, active=False)
    await _tick(pusher, clocks, 20, active=True)
    assert client.pushes[2].starts_at == START + timedelta(seconds=20)


async def test_pusher_never_blocks_and_keeps_one_push_in_flight() -> None:
    client, clocks = RecordingClient(held=True), Clocks()
    pusher = _pusher(client, clocks)
    for at in (0, 60, 120):
        clocks.now = at
        pusher.update(True, "s", f"t={at}")  # returns at once although the push hangs
    await asyncio.sleep(0)
    assert pusher.busy
    client.gate.set()
    await pusher.wait_idle()
    assert client.max_in_flight == 1
    # the state that waited behind the slow push is the newest, not every tick's
    assert [alert.annotations["description"] for alert in client.pushes] == ["t=0", "t=120"]


async def test_pusher_resolution_waiting_behind_a_firing_push_is_delivered() -> None:
    client, clocks = RecordingClient(held=True), Clocks()
    pusher = _pusher(client, clocks)
    await _tick_nowait(pusher, clocks, 0, active=True)
    await _tick_nowait(pusher, clocks, 1, active=False)
    client.gate.set()
    await pusher.wait_idle()
    assert [alert.ends_at for alert in client.pushes][-1] == START + timedelta(seconds=1)


async def _tick_nowait(pusher: AlertPusher, clocks: Clocks, at: float, active: bool) -> None:
    clocks.now = at
    pusher.update(active, "s", f"t={at}")
    await asyncio.sleep(0)


async def test_pusher_with_an_unreachable_alertmanager_does_not_raise(
    session: aiohttp.ClientSession,
) -> None:
    results: list[str] = []
    client = AlertmanagerClient(
        session, f"http://127.0.0.1:{_closed_port()}", timeout=5, on_result=results.append
    )
    clocks = Clocks()
    pusher = AlertPusher(client, resend_interval=60, clock=clocks.monotonic)
    pusher.update(True, "s", "d")
    await pusher.wait_idle()
    assert results == ["error"]


async def test_pusher_close_cancels_a_hanging_push() -> None:
    client, clocks = RecordingClient(held=True), Clocks()
    pusher = _pusher(client, clocks)
    await _tick_nowait(pusher, clocks, 0, active=True)
    await pusher.aclose()
    assert not pusher.busy
    assert client.in_flight == 0
