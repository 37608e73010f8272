"""A paced streaming upstream, as vLLM streams: one SSE event per token, each its own
TCP write (one HTTP chunk), every `interval` seconds from the request's arrival.
Each content event carries `"ts"`, the `time.monotonic()` reading taken just before
its write, so a client on the same machine can tell how long the event took to reach
it (on Linux, `time.monotonic` and `time.perf_counter` are both CLOCK_MONOTONIC).

A raw asyncio protocol rather than aiohttp: the instrument should cost little and
jitter less than the proxies it measures. With `hold`, it answers nothing (the
connection stays open until the client leaves): the upstream that keeps the one
admitted request of the queued-memory benchmark. Run as its own process:

    python -m proxy.bench.suite.paced [--port P] [--interval 0.02] [--hold]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from typing import cast

import uvloop

from proxy.bench.suite.payloads import content_choice, sse_event

_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_OTHER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_TOKEN = sse_event([content_choice(" tok")], ts=0.0).replace(b'"ts":0.0}', b'"ts":%.6f}')
_ROLE = sse_event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
_FINISH = sse_event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
DEFAULT_TOKENS = 64


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _request(buffer: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(request line, body, rest) once a whole request is in `buffer`."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].split(b"\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(buffer) < end + 4 + length:
        return None
    return head[0], buffer[end + 4 : end + 4 + length], buffer[end + 4 + length :]


class PacedStream(asyncio.Protocol):
    def __init__(self, interval: float, hold: bool) -> None:
        self.interval, self.hold = interval, hold
        self.buffer = b""
        self.busy = False  # answering; a pipelined request waits in the buffer
        self.timer: asyncio.TimerHandle | None = None
        self.left, self.start = 0, 0.0  # of the stream being answered
        self.usage: dict[str, int] = {}
        self.want_usage = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def _next(self) -> None:
        if self.busy or (found := _request(self.buffer)) is None:
            return
        line, body, self.buffer = found
        if not line.startswith(b"POST "):
            self.transport.write(_OTHER)
            return self._next()
        self.busy = True
        if self.hold:
            return
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        tokens = int(payload.get("max_tokens") or DEFAULT_TOKENS)
        options = payload.get("stream_options") or {}
        self.usage = {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}
        self.want_usage = options.get("include_usage") is True
        self.left, self.start = tokens, time.monotonic()
        self.transport.write(_HEAD + chunk(_ROLE))
        self._schedule(1)

    def _schedule(self, number: int) -> None:
        loop = asyncio.get_running_loop()
        # Absolute times from the arrival: timer lateness does not accumulate.
        delay = self.start + number * self.interval - time.monotonic()
        self.timer = loop.call_later(max(0.0, delay), self._emit, number)

    def _emit(self, number: int) -> None:
        self.transport.write(chunk(_TOKEN % time.monotonic()))
        self.left -= 1
        if self.left > 0:
            return self._schedule(number + 1)
        tail = [_FINISH]
        if self.want_usage:
            tail.append(sse_event([], usage=self.usage))
        tail.append(b"data: [DONE]\n\n")
        self.transport.write(b"".join(chunk(event) for event in tail) + b"0\r\n\r\n")
        self.busy, self.timer = False, None
        self._next()


async def serve(host: str, port: int, interval: float, hold: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: PacedStream(interval, hold), host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    mode = "holding every request" if hold else f"one token every {interval:g} s"
    print(f"paced upstream listening on http://{host}:{bound} ({mode})", flush=True)
    await asyncio.Event().wait()  # until SIGTERM ends the process


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m proxy.bench.suite.paced")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.interval, args.hold))


if __name__ == "__main__":
    main()
