"""Bad input and bad upstreams get clear, OpenAI-shaped answers; nothing leaks."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import openai
import pytest

from proxy.core.outcome import Outcome
from proxy.server.app import RunningProxy
from proxy.sim.app import SimHandle
from tests.helpers.metrics import metric
from tests.helpers.polling import eventually
from tests.helpers.settings import ProxyFactory

CHAT = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_openai_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert {"message", "type", "code"} <= set(body["error"])
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def post(url: str, payload: Any = CHAT, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/chat/completions", json=payload, **kwargs) as response,
    ):
        body = await response.read()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body
        return response.status, dict(response.headers), parsed


async def test_unreachable_upstream_is_502_then_503_with_retry_after(
    make_proxy: ProxyFactory,
) -> None:
    upstream = f"http://127.0.0.1:{closed_port()}"
    async with make_proxy(upstream=upstream, upstream_down_after=2) as proxy:
        first = await post(proxy.url)
        second = await post(proxy.url)
        third = await post(proxy.url)
    assert (first[0], second[0]) == (502, 502)
    assert_openai_error(first[2], "upstream_unreachable")
    status, headers, body = third
    assert status == 503
    assert_openai_error(body, "upstream_unavailable")
    assert int(headers["Retry-After"]) >= 1 and int(headers["retry-after-ms"]) >= 1
    assert proxy.state.admission.limiter.inflight == 0


async def test_upstream_comes_back_by_itself(make_proxy: ProxyFactory, sim: SimHandle) -> None:
    async with make_proxy(upstream_down_after=1, upstream_probe_interval=0.05) as proxy:
        proxy.state.upstream.record_connect_failure()
        assert (await post(proxy.url))[0] == 503
        await eventually(lambda: proxy.state.upstream.up, what="upstream up again")
        assert (await post(proxy.url))[0] == 200


async def test_hanging_upstream_is_504(make_proxy: ProxyFactory, sim: SimHandle) -> None:
    sim.set_faults(hang=True)
    async with make_proxy(first_byte_timeout=0.3) as proxy:
        status, _, body = await post(proxy.url)
        assert status == 504
        assert_openai_error(body, "upstream_timeout")
        requests = metric(
            proxy.state, "proxy_requests_total", outcome=Outcome.OVERLOAD.value, status_class="none"
        )
        assert requests == 1
        assert proxy.state.admission.limiter.inflight == 0


async def test_oversized_body_is_413(make_proxy: ProxyFactory) -> None:
    async with make_proxy(max_body_bytes=1000) as proxy:
        payload = {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}
        status, _, body = await post(proxy.url, payload)
        assert status == 413
        assert_openai_error(body, "request_too_large")

        async def chunked() -> Any:  # no Content-Length: counted while read
            for _ in range(20):
                yield b"x" * 100

        status, _, body = await post(proxy.url, None, data=chunked())
        assert status == 413


async def test_upstream_errors_pass_through_unchanged(proxy: RunningProxy, sim: SimHandle) -> None:
    payload = {**CHAT, "model": "no-such-model"}
    direct = await post(sim.url, payload)
    proxied = await post(proxy.url, payload)
    assert proxied[0] == direct[0] == 404
    assert proxied[2] == direct[2]
    async with aiohttp.ClientSession() as session:
        for base in (sim.url, proxy.url):
            async with session.get(f"{base}/v1/no-such-route") as response:
                assert response.status == 404
                requests = metric(
                    proxy.state,
                    "proxy_requests_total",
                    outcome=Outcome.IGNORED.value,
                    status_class="4xx",
                )
                assert requests == 1  # a client error is not overload


async def test_malformed_json_gets_the_upstreams_400(proxy: RunningProxy, sim: SimHandle) -> None:
    direct = await post(sim.url, None, data=b"{not json")
    proxied = await post(proxy.url, None, data=b"{not json")
    assert proxied[0] == direct[0] == 400
    assert proxied[2] == direct[2]


async def test_a_cut_stream_ends_the_clients_stream_with_an_error(
    proxy: RunningProxy, sim: SimHandle
) -> None:
    sim.set_faults(cut_after_chunks=2)
    async with openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="t", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="tiny-llama",
            messages=CHAT["messages"],
            max_tokens=64,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
    member = proxy.state.pool.members[0].name
    assert (
        metric(proxy.state, "proxy_upstream_errors_total", upstream=member, kind="stream_cut") == 1
    )
    requests = metric(
        proxy.state, "proxy_requests_total", outcome=Outcome.OVERLOAD.value, status_class="2xx"
    )
    assert requests == 1
    assert proxy.state.admission.limiter.inflight == 0


async def test_admin_port_unknown_route_is_a_json_404(proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{proxy.admin_url}/nope") as r:
        assert r.status == 404
        assert_openai_error(await r.json(), "not_found")


async def test_malformed_request_line_is_a_json_400(proxy: RunningProxy) -> None:
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GARB AGE\r\n\r\n")
    answer = (await reader.read()).decode()
    writer.close()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.") and " 400 " in head.splitlines()[0]
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


async def test_a_draining_proxy_answers_503_and_is_not_ready(proxy: RunningProxy) -> None:
    proxy.state.draining = True
    status, headers, body = await post(proxy.url)
    assert status == 503
    assert_openai_error(body, "upstream_unavailable")
    assert int(headers["Retry-After"]) >= 1
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.admin_url}/readyz") as response,
    ):
        assert response.status == 503
        assert (await response.json())["draining"] is True


async def test_an_upstream_that_accepts_then_closes_is_marked_down(
    make_proxy: ProxyFactory, sim: SimHandle
) -> None:
    sim.set_faults(refuse=True)
    async with make_proxy(upstream_down_after=2, upstream_probe_interval=0.05) as proxy:
        first, second, third = [await post(proxy.url) for _ in range(3)]
        assert (first[0], second[0]) == (502, 502)
        status, headers, body = third
        assert status == 503
        assert_openai_error(body, "upstream_unavailable")
        assert int(headers["Retry-After"]) >= 1
        assert "127.0.0.1" not in json.dumps(body)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.admin_url}/readyz") as ready,
        ):
            assert ready.status == 503
            assert (await ready.json())["upstream_up"] is False
        assert proxy.state.admission.limiter.inflight == 0
        sim.clear_faults()
        await eventually(lambda: proxy.state.upstream.up, what="probe finds it back")
        assert (await post(proxy.url))[0] == 200


async def test_error_answers_name_no_address_and_log_no_traceback(
    make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = f"http://127.0.0.1:{closed_port()}"
    async with make_proxy(upstream=upstream) as proxy:
        status, _, body = await post(proxy.url)
        assert status == 502
        assert upstream not in json.dumps(body)
        assert "Connect call failed" not in json.dumps(body)
        host, port = proxy.url.removeprefix("http://").split(":")
        for garbage in (b"GET /\xff HTTP/1.1\r\n\r\n", b"GARB AGE\r\n\r\n", b"X" * 9000 + b"\r\n"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(garbage)
            answer = await reader.read()
            writer.close()
            assert b" 400 " in answer.split(b"\r\n")[0]
            assert b"\xff" not in answer and b"GARB" not in answer  # the input is not echoed
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{proxy.admin_url}/secret/path") as missing:
                assert "secret" not in await missing.text()
            async with session.get(f"{proxy.admin_url}/healthz") as health:
                assert health.headers["Server"] == "sla-proxy"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
