"""What reaches the upstream: method, path, query and body unchanged; hop-by-hop
headers gone; X-Forwarded-* set; the usage request added only when needed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.server.app import RunningProxy, running_proxy
from proxy.server.forwarded import ForwardingPolicy
from proxy.server.inbound import plan_request
from proxy.server.state import ADMITTED_PATHS
from tests.helpers.settings import proxy_settings

Echo = tuple[str, list[dict[str, Any]], asyncio.Event]
RELEASE = web.AppKey("release", asyncio.Event)


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    """An upstream that answers with what it received."""
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if "trickle" in request.query:
            return await trickle(request)
        record = {
            "method": request.method,
            "path_qs": request.path_qs,
            "headers": dict(request.headers),
            "body": (await request.read()).decode(),
        }
        seen.append(record)
        return web.json_response(record, headers={"Connection": "keep-alive", "X-Up": "1"})

    release = asyncio.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await release.wait()  # the client must see "first" before this returns
        await response.write(b"data: second\n\n")
        return response

    app = web.Application()
    app[RELEASE] = release
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen, release
    finally:
        release.set()
        await runner.cleanup()


@pytest.fixture
async def proxied(echo: Echo) -> AsyncIterator[RunningProxy]:
    async with running_proxy(proxy_settings(echo[0])) as running:
        yield running


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
async def test_method_path_query_and_body_arrive_unchanged(
    method: str, proxied: RunningProxy, echo: Echo
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"{proxied.url}/any/path?a=1&b=%20x", data=b"raw-bytes"
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["X-Up"] == "1"
    record = echo[1][-1]
    assert record["method"] == method
    assert record["path_qs"] == "/any/path?a=1&b=%20x"
    assert record["body"] == ("raw-bytes" if method != "GET" else record["body"])


async def test_hop_by_hop_headers_are_dropped_and_forwarded_headers_set(
    proxied: RunningProxy, echo: Echo
) -> None:
    headers = {
        "Authorization": "Bearer sk-1",
        "Connection": "keep-alive, X-Private",
        "X-Private": "secret",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "X-Forwarded-For": "10.0.0.1",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxied.url}/v1/models", headers=headers) as response,
    ):
        assert response.status == 200
    received = {k.lower(): v for k, v in echo[1][-1]["headers"].items()}
    assert received["authorization"] == "Bearer sk-1"
    for hop in ("x-private", "keep-alive", "te"):
        assert hop not in received
    assert received["x-forwarded-for"] == "127.0.0.1"  # an untrusted peer's claim is replaced
    assert received["x-forwarded-proto"] == "http"


async def test_admitted_requests_carry_the_queue_time_header(proxied: RunningProxy) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxied.url}/v1/completions", json={"prompt": "x"}) as response,
    ):
        assert float(response.headers["x-sla-proxy-queue-ms"]) >= 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/anything?trickle=1", None),  # raw bytes
        ("POST", "/v1/chat/completions?trickle=1", {"stream": True}),  # SSE relay
    ],
)
async def test_streamed_bytes_are_relayed_as_they_arrive(
    proxied: RunningProxy, echo: Echo, method: str, path: str, body: Any
) -> None:
    release = echo[2]
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{proxied.url}{path}", json=body) as response,
    ):
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
        assert first == b"data: first\n\n"  # arrived while upstream still holds "second"
        release.set()
        assert await response.content.read() == b"data: second\n\n"


def test_stream_without_usage_gets_usage_requested() -> None:
    body = json.dumps({"model": "m", "stream": True}).encode()
    plan = plan_request("POST", "/v1/chat/completions", body, ADMITTED_PATHS)
    assert plan.admitted and plan.streamed and plan.strip_usage
    assert json.loads(plan.body)["stream_options"] == {"include_usage": True}


def test_stream_with_usage_is_left_alone() -> None:
    body = json.dumps({"stream": True, "stream_options": {"include_usage": True}}).encode()
    plan = plan_request("POST", "/v1/completions", body, ADMITTED_PATHS)
    assert plan.streamed and not plan.strip_usage and plan.body == body


def test_other_stream_options_are_kept() -> None:
    body = json.dumps({"stream": True, "stream_options": {"continuous_usage_stats": False}})
    plan = plan_request("POST", "/v1/chat/completions", body.encode(), ADMITTED_PATHS)
    assert json.loads(plan.body)["stream_options"] == {
        "continuous_usage_stats": False,
        "include_usage": True,
    }


def test_non_generation_requests_take_no_permit() -> None:
    assert not plan_request("GET", "/v1/models", b"", ADMITTED_PATHS).admitted
    assert not plan_request("POST", "/tokenize", b"{}", ADMITTED_PATHS).admitted
    assert plan_request("POST", "/v1/embeddings", b"{}", ADMITTED_PATHS).admitted


def test_malformed_json_is_forwarded_as_is() -> None:
    plan = plan_request("POST", "/v1/chat/completions", b"{nope", ADMITTED_PATHS)
    assert plan.admitted and not plan.streamed and plan.body == b"{nope"


FORGED = {
    "X-Forwarded-For": "6.6.6.6",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "bank.example",
    "X-Forwarded-Port": "443",
    "Forwarded": "for=6.6.6.6;proto=https",
    "X-Real-IP": "6.6.6.6",
}


async def _received(url: str, echo: Echo, headers: dict[str, str]) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/v1/models", headers=headers) as response,
    ):
        assert response.status == 200
    return {k.lower(): v for k, v in echo[1][-1]["headers"].items()}


async def test_forwarding_headers_from_an_untrusted_peer_are_replaced(
    proxied: RunningProxy, echo: Echo
) -> None:
    received = await _received(proxied.url, echo, FORGED)
    assert received["x-forwarded-for"] == "127.0.0.1"
    assert received["x-real-ip"] == "127.0.0.1"
    assert received["x-forwarded-proto"] == "http"
    assert received["forwarded"].startswith("for=127.0.0.1;proto=http;host=")
    assert "x-forwarded-port" not in received
    assert "6.6.6.6" not in json.dumps(received) and "bank.example" not in json.dumps(received)


async def test_forwarding_headers_from_a_trusted_proxy_are_kept_and_appended(echo: Echo) -> None:
    config = proxy_settings(echo[0], trusted_proxies="10.0.0.0/8, 127.0.0.1/32")
    async with running_proxy(config) as proxy:
        received = await _received(proxy.url, echo, FORGED)
    assert received["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
    assert received["forwarded"].startswith("for=6.6.6.6;proto=https, for=127.0.0.1;proto=http")
    assert received["x-real-ip"] == "6.6.6.6"
    assert received["x-forwarded-proto"] == "https"
    assert received["x-forwarded-host"] == "bank.example"
    assert received["x-forwarded-port"] == "443"


def test_ipv6_and_ipv4_mapped_peers() -> None:
    policy = ForwardingPolicy([ip_network("10.0.0.0/8")])
    assert policy.trusts("::ffff:10.1.2.3")
    assert not policy.trusts("::1") and not policy.trusts(None) and not policy.trusts("junk")
    headers = dict(policy.headers([], "::1", "http", 'a"b'))
    assert headers["Forwarded"] == 'for="[::1]";proto=http;host="a\\"b"'
