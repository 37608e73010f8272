"""The client of the paced-stream benchmark: N keep-alive connections, each streaming
one chat answer after another until a deadline, timing every content event on
arrival against the `"ts"` its upstream wrote into it (one clock: CLOCK_MONOTONIC,
same machine). A raw asyncio protocol with its own chunked decoding, so the
instrument adds little of its own delay; what it adds is the same on every path and
cancels out in the added-delay figures (proxied minus direct)."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import socket
import time
from array import array
from dataclasses import dataclass, field
from typing import cast

_TS = re.compile(rb'"ts":([0-9]+\.[0-9]+)\}')


@dataclass(slots=True)
class Tally:
    window: tuple[float, float]  # only events the upstream wrote inside it are timed
    delays: array[float] = field(default_factory=lambda: array("d"))  # seconds
    events: int = 0  # content events received, in the window or not
    streams: int = 0  # answers received whole
    failures: int = 0  # a status other than 200, not chunked, or cut


def request_bytes(port: int, tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": "paced",
            "messages": [{"role": "user", "content": "Stream, please."}],
            "max_tokens": tokens,
            "stream": True,
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class StreamClient(asyncio.Protocol):
    def __init__(self, request: bytes, tally: Tally, done: asyncio.Future[None]) -> None:
        self.request, self.tally, self.done = request, tally, done
        self.raw = b""  # bytes not yet decoded (chunk framing)
        self.text = b""  # decoded body not yet scanned for timestamps
        self.in_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.tally.failures += 1
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.raw += data
        if not self.in_body:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.raw[:end].lower()
            if not head.startswith(b"http/1.1 200") or b"transfer-encoding: chunked" not in head:
                return self._give_up()
            self.raw, self.in_body = self.raw[end + 4 :], True
        finished = self._decode()
        self._scan(now)
        if finished:
            self._next(now)

    def _decode(self) -> bool:
        """Moves whole chunks from `raw` to `text`; True at the terminating chunk."""
        while (line_end := self.raw.find(b"\r\n")) >= 0:
            size = int(self.raw[:line_end].split(b";")[0], 16)
            start = line_end + 2
            if len(self.raw) < start + size + 2:
                return False
            if size == 0:
                self.raw = self.raw[start + 2 :]
                return True
            self.text += self.raw[start : start + size]
            self.raw = self.raw[start + size + 2 :]
        return False

    def _scan(self, now: float) -> None:
        low, high = self.tally.window
        last = 0
        for match in _TS.finditer(self.text):
            self.tally.events += 1
            sent = float(match[1])
            if low <= sent <= high:
                self.tally.delays.append(now - sent)
            last = match.end()
        if last:
            self.text = self.text[last:]

    def _next(self, now: float) -> None:
        self.tally.streams += 1
        self.text, self.in_body = b"", False
        if now < self.tally.window[1]:
            self.transport.write(self.request)
            return
        self.done.set_result(None)
        self.transport.close()

    def _give_up(self) -> None:
        self.tally.failures += 1
        self.done.set_result(None)
        self.transport.close()


async def run_streams(
    port: int, streams: int, tokens: int, interval: float, seconds: float, warmup: float
) -> Tally:
    """`streams` concurrent streams for warmup + seconds (starts spread over one token
    interval); events the upstream wrote during the last `seconds` are timed."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    tally = Tally((start + warmup, start + warmup + seconds))
    request = request_bytes(port, tokens)
    futures: list[asyncio.Future[None]] = []
    transports: list[asyncio.Transport] = []
    try:
        for number in range(streams):
            wait = start + number * interval / streams - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # pacing the starts, not synchronisation
            done: asyncio.Future[None] = loop.create_future()
            factory = functools.partial(StreamClient, request, tally, done)
            transport, _ = await loop.create_connection(factory, "127.0.0.1", port)
            futures.append(done)
            transports.append(transport)
        await asyncio.wait_for(asyncio.gather(*futures), warmup + seconds + tokens * interval + 30)
    finally:
        for opened in transports:
            opened.close()
    return tally
