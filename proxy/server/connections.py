"""Client connections of one listener: how many may be open, how long one may take to
send a request's line and headers, and the answers for what aiohttp rejects before any
handler runs.

- `--max-connections`: beyond it a new connection gets a raw 503 with Retry-After and
  is closed (half-closed first and drained, so the client's own request bytes cannot
  turn the close into a reset that destroys the answer). Envoy and nginx drop such a
  connection without a word; a 503 tells the client (and the OpenAI SDKs) to retry.
- `--client-header-timeout`: from a connection's first byte (or its opening) until its
  request head is complete. A client that sent part of a head gets a raw 408; one that
  sent nothing is just closed, as nginx does.
- `--keepalive-timeout`: aiohttp's own idle timer between two requests.
- Malformed requests (aiohttp's parser): a JSON 400 that names no input, logged on
  one line at debug level; never a traceback per request.

This builds on aiohttp's RequestHandler internals (`_messages`, `_request_count`,
`_request_in_progress`, `_keepalive_handle`); tests/hostile covers each behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from proxy.server.errors import json_error, raw_error

log = logging.getLogger("sla_proxy.connections")

_LINGER = 2.0  # seconds a refused connection is drained before it is closed
_WARN_EVERY = 10.0  # seconds between two warnings about refused connections
_FD_RESERVE = 256  # descriptors kept for listeners, logs and the upstream pool's slack

_REFUSED = raw_error(
    503,
    "Too many connections to the proxy; retry after the indicated time.",
    "service_unavailable",
    "too_many_connections",
    {"Retry-After": "1", "retry-after-ms": "1000"},
)
_HEADER_TIMEOUT = raw_error(
    408, "The request headers did not arrive in time.", "invalid_request_error", "request_timeout"
)
_LOW_LEVEL = {
    400: ("Malformed HTTP request.", "invalid_request_error"),
    504: ("The request timed out.", "gateway_timeout"),
}


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout: float
    keepalive_timeout: float
    max_connections: int


class Gate:
    """Counts one listener's open client connections."""

    __slots__ = ("_warned_at", "limit", "open", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self._warned_at = -_WARN_EVERY

    def refuse(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "refusing connections: %d open (--max-connections %d), %d refused so far",
                self.open,
                self.limit,
                self.refused,
            )


class ProxyHandler(RequestHandler):
    __slots__ = ("_counted", "_gate", "_header_handle", "_header_timeout", "_partial")

    def __init__(self, manager: web.Server, *, gate: Gate, header_timeout: float, **kw: Any):
        super().__init__(manager, **kw)
        self._gate = gate
        self._header_timeout = header_timeout
        self._header_handle: asyncio.TimerHandle | None = None
        self._partial = False  # some bytes of the pending request head arrived
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gate = self._gate
        if gate.open >= gate.limit:
            self._refuse(cast(asyncio.Transport, transport))
            return
        gate.open += 1
        self._counted = True
        super().connection_made(transport)
        self._arm_header_timer(partial=False)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._gate.open -= 1
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and not self._force_close and self._between_requests():
            if self._header_handle is None:
                self._arm_header_timer(partial=True)
            self._partial = True
            if self._keepalive_handle is not None:  # no longer idle: the head timer rules
                self._keepalive_handle.cancel()
                self._keepalive_handle = None
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._disarm_header_timer()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 and status != 504:
            log.error("internal error handling a request", exc_info=exc)
        else:
            log.debug("rejected a request from %s: %s", request.remote, type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; the connection is broken")
        text, type_ = _LOW_LEVEL.get(status, ("Internal error in the proxy.", "server_error"))
        response = json_error(status, text, type_, status)
        response.force_close()
        return response

    async def _handle_request(
        self,
        request: BaseRequest,
        start_time: float | None,
        request_handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
    ) -> tuple[web.StreamResponse, bool]:
        response, reset = await super()._handle_request(request, start_time, request_handler)
        if response.status == 408:
            # A client too slow to send its body is not worth aiohttp's lingering read
            # of the rest: close as soon as the 408 is out.
            self.force_close()
        return response, reset

    def _between_requests(self) -> bool:
        return not self._request_in_progress and not self._messages

    def _arm_header_timer(self, *, partial: bool) -> None:
        self._partial = partial
        self._header_handle = self._loop.call_later(self._header_timeout, self._header_late)

    def _disarm_header_timer(self) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None

    def _header_late(self) -> None:
        self._header_handle = None
        transport = self.transport
        if transport is None or self._force_close or not self._between_requests():
            return
        if self._partial:
            transport.write(_HEADER_TIMEOUT)
        self.force_close()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._force_close = True  # data_received ignores whatever the client sends
        self._gate.refuse()
        transport.write(_REFUSED)
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(_LINGER, transport.close)


class ProxyServer(web.Server):
    gate: Gate
    header_timeout: float

    @classmethod
    def adopt(cls, server: web.Server, limits: ClientLimits) -> ProxyServer:
        server.__class__ = cls
        adopted = cast(ProxyServer, server)
        adopted.gate = Gate(limits.max_connections)
        adopted.header_timeout = limits.header_timeout
        return adopted

    def __call__(self) -> RequestHandler:
        return ProxyHandler(
            self,
            loop=self._loop,
            gate=self.gate,
            header_timeout=self.header_timeout,
            **self._kwargs,
        )


class ProxyRunner(web.AppRunner):
    """AppRunner with the limits above, handler cancellation on (a client that
    disconnects cancels its handler, and so its upstream request) and no access log."""

    def __init__(self, app: web.Application, limits: ClientLimits, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        kwargs.setdefault("access_log", None)
        kwargs["keepalive_timeout"] = limits.keepalive_timeout
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        return ProxyServer.adopt(await super()._make_server(), self._limits)

    @property
    def gate(self) -> Gate:
        server = self.server
        assert isinstance(server, ProxyServer), "the runner is not set up"
        return server.gate


def raise_fd_limit(max_connections: int) -> int:
    """Raise the soft descriptor limit as far as `max_connections` needs (each client
    connection may hold one upstream connection, plus a reserve), up to the hard limit;
    returns the number of client connections the limit then allows."""
    needed = 2 * max_connections + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return max_connections
    return max(1, (soft - _FD_RESERVE) // 2)
