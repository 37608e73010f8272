"""Slow and idle clients cannot hold connections: a head that trickles gets 408 and is
closed, a silent connection is closed, a body that stops gets 408, an idle keep-alive
connection is closed, and beyond --max-connections a client is told 503. Meanwhile
normal requests are served. (Small timeouts; every wait is a bounded poll.)"""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp

from proxy.server.app import RunningProxy
from tests.helpers.polling import eventually
from tests.helpers.raw_http import address, parse_answer, request
from tests.helpers.settings import ProxyFactory

CHAT = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 64\r\n"


class SlowClient:
    """Sends `data` one byte every `every` seconds until the proxy closes on it."""

    def __init__(self, url: str, data: bytes, every: float) -> None:
        self.url, self.data, self.every = url, data, every
        self.received = b""
        self.closed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        reader, writer = await asyncio.open_connection(*address(self.url))
        reading = asyncio.create_task(self._read(reader))
        try:
            for index in range(len(self.data)):
                if self.closed.is_set():
                    break
                writer.write(self.data[index : index + 1])
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                await asyncio.sleep(self.every)  # the trickle itself, not a synchronisation
            await self.closed.wait()
        finally:
            reading.cancel()
            await close(writer)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while chunk := await reader.read(65536):
                self.received += chunk
        except ConnectionError:
            pass
        self.closed.set()


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def served(proxy: RunningProxy, count: int) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.post(f"{proxy.url}/v1/chat/completions", json=CHAT) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_trickled_heads_get_408_while_normal_requests_are_served(
    make_proxy: ProxyFactory,
) -> None:
    async with make_proxy(client_header_timeout=1.5) as proxy:
        slow = [SlowClient(proxy.url, HEAD * 50, every=0.05) for _ in range(20)]
        await eventually(lambda: proxy.state.connections.open >= 20, what="slow clients in")
        assert await served(proxy, 10) == [200] * 10  # beside twenty open slow sockets
        await eventually(lambda: all(c.closed.is_set() for c in slow), what="slow heads cut")
        for client in slow:
            answer = parse_answer(client.received)
            assert answer.status == 408
            assert json.loads(answer.body)["error"]["code"] == "request_timeout"
        await asyncio.gather(*(client.task for client in slow))
        await eventually(lambda: proxy.state.connections.open == 0, what="connections closed")
        assert proxy.state.admission.limiter.inflight == 0


async def test_a_head_sent_in_pieces_within_the_timeout_is_served(make_proxy: ProxyFactory) -> None:
    async with make_proxy(client_header_timeout=5.0) as proxy:
        body = json.dumps(CHAT).encode()
        data = request("POST", "/v1/chat/completions", body)
        reader, writer = await asyncio.open_connection(*address(proxy.url))
        for piece in (data[:10], data[10:30], data[30:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)  # pieces of one head, well inside the timeout
        answer = parse_answer(await asyncio.wait_for(reader.read(), 10))
        await close(writer)
        assert answer.status == 200


async def test_a_silent_connection_is_closed_without_an_answer(make_proxy: ProxyFactory) -> None:
    async with make_proxy(client_header_timeout=0.3) as proxy:
        reader, writer = await asyncio.open_connection(*address(proxy.url))
        assert await asyncio.wait_for(reader.read(), 10) == b""  # EOF, no answer
        await close(writer)


async def test_an_idle_keepalive_connection_is_closed(make_proxy: ProxyFactory) -> None:
    async with make_proxy(keepalive_timeout=0.3, client_header_timeout=30) as proxy:
        reader, writer = await asyncio.open_connection(*address(proxy.url))
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: proxy.test\r\n\r\n")
        # Everything up to EOF: the whole answer, then the close while the connection idles.
        data = await asyncio.wait_for(reader.read(), 10)
        await close(writer)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"0\r\n\r\n")


async def test_a_stalled_body_gets_408_and_takes_no_permit(make_proxy: ProxyFactory) -> None:
    async with make_proxy(client_body_timeout=0.3) as proxy:
        reader, writer = await asyncio.open_connection(*address(proxy.url))
        writer.write(HEAD + b"\r\n" + b'{"model": ')  # 10 of the 64 bytes announced
        answer = parse_answer(await asyncio.wait_for(reader.read(), 10))
        await close(writer)
        assert answer.status == 408
        assert answer.headers["connection"] == "close"
        assert proxy.state.admission.limiter.inflight == 0
        assert proxy.state.families.registry.get_sample_value("proxy_overhead_seconds_count") == 0


async def test_connections_beyond_the_cap_get_503_with_retry_after(
    make_proxy: ProxyFactory,
) -> None:
    async with make_proxy(max_connections=3, client_header_timeout=30) as proxy:
        idle = [await asyncio.open_connection(*address(proxy.url)) for _ in range(3)]
        await eventually(lambda: proxy.state.connections.open == 3, what="three open")
        reader, writer = await asyncio.open_connection(*address(proxy.url))
        writer.write(request("GET", "/v1/models"))
        answer = parse_answer(await asyncio.wait_for(reader.read(), 10))
        await close(writer)
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        assert json.loads(answer.body)["error"]["code"] == "too_many_connections"
        assert proxy.state.connections.refused == 1
        _, first = idle.pop()
        await close(first)
        await eventually(lambda: proxy.state.connections.open == 2, what="one closed")
        assert await served(proxy, 1) == [200]
        for _, other in idle:
            await close(other)
