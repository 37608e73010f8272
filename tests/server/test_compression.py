"""The upstream is asked for `identity`; one that compresses anyway is decoded, so usage
is still read (whole bodies and SSE) and the client gets a body its headers describe."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from proxy.server.app import running_proxy
from tests.helpers.metrics import metric
from tests.helpers.settings import proxy_settings

USAGE = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


@dataclass
class Gzipper:
    url: str = ""
    accept_encoding: list[str | None] = field(default_factory=list)


GZIPPER = web.AppKey("gzipper", Gzipper)


def _gzip() -> zlib._Compress:
    return zlib.compressobj(wbits=16 + zlib.MAX_WBITS)


async def generate(request: web.Request) -> web.StreamResponse:
    """Compresses whatever the request asked for, as a misconfigured upstream would."""
    request.app[GZIPPER].accept_encoding.append(request.headers.get("Accept-Encoding"))
    body = await request.json()
    headers = {"Content-Encoding": "gzip"}
    if not body.get("stream"):
        payload = json.dumps({"choices": [{"message": {"content": "hello"}}], "usage": USAGE})
        packer = _gzip()
        data = packer.compress(payload.encode()) + packer.flush()
        return web.Response(body=data, headers=headers, content_type="application/json")
    response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
    await response.prepare(request)
    packer = _gzip()
    events = [
        {"choices": [{"index": 0, "delta": {"content": word}}]} for word in ("a", "b", "c")
    ] + [{"choices": [], "usage": USAGE}]
    for event in events:
        chunk = f"data: {json.dumps(event)}\n\n".encode()
        await response.write(packer.compress(chunk) + packer.flush(zlib.Z_SYNC_FLUSH))
    await response.write(packer.compress(b"data: [DONE]\n\n") + packer.flush())
    return response


@pytest.fixture
async def gzipper() -> AsyncIterator[Gzipper]:
    app = web.Application()
    state = app[GZIPPER] = Gzipper()
    app.router.add_post("/v1/chat/completions", generate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_compressed_whole_answer_is_decoded_and_its_usage_read(gzipper: Gzipper) -> None:
    async with (
        running_proxy(proxy_settings(gzipper.url)) as proxy,
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(f"{proxy.url}/v1/chat/completions", json=CHAT) as response,
    ):
        raw = await response.read()
        assert "Content-Encoding" not in response.headers
        assert json.loads(raw)["usage"] == USAGE  # plain JSON, as the headers say
    assert gzipper.accept_encoding == ["identity"]
    assert metric(proxy.state, "proxy_tokens_total", kind="completion") == 5


async def test_a_compressed_stream_is_decoded_and_its_usage_read(gzipper: Gzipper) -> None:
    async with (
        running_proxy(proxy_settings(gzipper.url)) as proxy,
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(f"{proxy.url}/v1/chat/completions", json={**CHAT, "stream": True}) as response,
    ):
        raw = await response.read()
        assert "Content-Encoding" not in response.headers
    events = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    contents = [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]]
    assert contents == ["a", "b", "c"]  # the usage event the proxy asked for is stripped
    assert metric(proxy.state, "proxy_tokens_total", kind="completion") == 5
