"""Forwarding: one request from the client to the upstream and back.

Latencies are read from `time.perf_counter`: uvloop's `loop.time()` only ticks in
whole milliseconds, too coarse for TPOT or the proxy's own overhead.

Generation requests take a permit from the limiter first; the permit lives exactly
as long as the upstream request (`async with`), so no path can leak it. Streams are
relayed event by event as they arrive. A client that goes away cancels this
handler (handler cancellation is on), which closes the upstream connection, so
vLLM aborts the sequence and frees its KV cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy.core.outcome import Outcome, Sample, UpstreamErrorKind, classify
from proxy.errors import BadGateway, BodyTooLarge, GatewayTimeout, ProxyError, Shed
from proxy.server.sse import SseRelay
from proxy.server.state import STATE, CancelPhase, ProxyState
from proxy.settings import Priority

log = logging.getLogger("sla_proxy.forward")

# RFC 9110 §7.6.1 hop-by-hop headers, plus what aiohttp recomputes itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Upstream answers uncompressed so usage can be read; the client link is loopback/LAN.
_NOT_FORWARDED = _HOP_BY_HOP | {"accept-encoding"}
_NOT_RETURNED = _HOP_BY_HOP | {"content-encoding"}

QUEUE_HEADER = "x-sla-proxy-queue-ms"
QUEUE_TIMEOUT_HEADER = "x-queue-timeout"


@dataclass(frozen=True, slots=True)
class Plan:
    """What the proxy does with one request, decided from its method, path and body."""

    admitted: bool  # takes a permit: a generation request
    streamed: bool
    strip_usage: bool  # the proxy asked upstream for usage; the client did not
    body: bytes


def plan_request(method: str, path: str, body: bytes, admitted_paths: frozenset[str]) -> Plan:
    admitted = method == "POST" and path.rstrip("/") in admitted_paths
    if not admitted or not body:
        return Plan(admitted, False, False, body)
    try:
        payload = json.loads(body)
    except ValueError:
        return Plan(admitted, False, False, body)  # upstream gives its own 400
    if not isinstance(payload, dict) or payload.get("stream") is not True:
        return Plan(admitted, False, False, body)
    options = payload.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return Plan(admitted, True, False, body)
    if path.rstrip("/") not in _USAGE_PATHS or (
        options is not None and not isinstance(options, dict)
    ):
        return Plan(admitted, True, False, body)
    payload["stream_options"] = {**(options or {}), "include_usage": True}
    return Plan(admitted, True, True, json.dumps(payload).encode())


_USAGE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


def priority_of(request: web.Request, state: ProxyState) -> Priority:
    header = request.headers.get(state.settings.priority_header)
    if header is not None:
        return Priority.parse(header)
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        mapped = state.settings.api_key_priorities.get(auth[7:].strip())
        if mapped is not None:
            return mapped
    return Priority.NORMAL


def queue_timeout_of(request: web.Request, state: ProxyState) -> float:
    settings = state.settings
    raw = request.headers.get(QUEUE_TIMEOUT_HEADER)
    if raw is None:
        return settings.queue_timeout
    try:
        value = float(raw)
    except ValueError:
        return settings.queue_timeout
    if value != value or value < 0:  # NaN or negative: ignore, as unknown priorities are
        return settings.queue_timeout
    return min(value, settings.max_queue_timeout)


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"Request body of {request.content_length} bytes exceeds {limit}.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"Request body exceeds {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def upstream_headers(request: web.Request) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    connection_tokens = {
        token.strip().lower() for token in request.headers.get("Connection", "").split(",")
    }
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered not in _NOT_FORWARDED and lowered not in connection_tokens:
            headers.add(name, value)
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Forwarded-Proto"] = request.scheme
    if request.host:
        headers["X-Forwarded-Host"] = request.host
    return headers


def client_headers(upstream: Mapping[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(
        (name, value) for name, value in upstream.items() if name.lower() not in _NOT_RETURNED
    )


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    arrived = time.perf_counter()
    body = await read_body(request, state.settings.max_body_bytes)
    plan = plan_request(request.method, request.path, body, state.admitted_paths)
    if not plan.admitted:
        state.upstream.check()
        return await Forwarder(request, state, plan, arrived, queued=0.0, epoch=-1).run()
    priority = priority_of(request, state)
    state.metrics.arrivals.labels(priority.value).inc()
    state.control.tally.arrivals += 1
    state.upstream.check()
    admitted = False
    try:
        async with state.limiter.acquire(priority, queue_timeout_of(request, state)) as permit:
            admitted = True
            state.metrics.queue_wait.labels(priority.value).observe(permit.queued_seconds)
            forwarder = Forwarder(
                request, state, plan, arrived, permit.queued_seconds, permit.epoch
            )
            return await forwarder.run()
    except asyncio.CancelledError:
        if not admitted:
            state.metrics.cancellations.labels(CancelPhase.QUEUED.value).inc()
        raise
    except Shed as shed:
        state.metrics.shed.labels(shed.reason.value, priority.value).inc()
        state.control.tally.shed += 1
        raise


class Forwarder:
    """Sends one request upstream and relays the answer; records what happened."""

    def __init__(
        self,
        request: web.Request,
        state: ProxyState,
        plan: Plan,
        arrived: float,
        queued: float,
        epoch: int,
    ) -> None:
        self.request = request
        self.state = state
        self.plan = plan
        self.arrived = arrived
        self.queued = queued
        self.epoch = epoch
        self.sent = 0.0
        self.ttft: float | None = None
        self.status: int | None = None
        self.error: UpstreamErrorKind | None = None
        self.client_gone = False
        self.usage: dict[str, Any] | None = None
        self.content_events = 0

    async def run(self) -> web.StreamResponse:
        settings = self.state.settings
        url = f"{settings.upstream_base}{self.request.rel_url}"
        self.sent = time.perf_counter()
        self.state.metrics.overhead.observe(max(0.0, self.sent - self.arrived - self.queued))
        try:
            try:
                async with asyncio.timeout(settings.first_byte_timeout):
                    upstream = await self.state.session.request(
                        self.request.method,
                        url,
                        headers=upstream_headers(self.request),
                        data=self.plan.body or None,
                        allow_redirects=False,
                    )
            except TimeoutError as exc:
                raise self._fail(
                    UpstreamErrorKind.TIMEOUT,
                    GatewayTimeout(
                        f"The upstream sent no response within {settings.first_byte_timeout:g} s."
                    ),
                ) from exc
            except aiohttp.ClientConnectorError as exc:
                self.state.upstream.record_connect_failure()
                raise self._fail(
                    UpstreamErrorKind.CONNECT,
                    BadGateway(f"Cannot connect to the upstream server: {exc.os_error or exc}"),
                ) from exc
            except aiohttp.ClientError as exc:
                raise self._fail(
                    UpstreamErrorKind.CONNECT,
                    BadGateway(
                        f"The upstream server failed before answering: {exc.__class__.__name__}"
                    ),
                ) from exc
            self.state.upstream.record_ok()
            self.status = upstream.status
            if upstream.status == 429 or upstream.status >= 500:
                kind = (
                    UpstreamErrorKind.STATUS_429
                    if upstream.status == 429
                    else (UpstreamErrorKind.STATUS_5XX)
                )
                self.state.metrics.upstream_errors.labels(kind.value).inc()
            if self.ttft is None and not self.plan.streamed:
                self.ttft = time.perf_counter() - self.sent
            try:
                if not self.plan.admitted:  # anything else streams through untouched
                    return await self._relay_stream(upstream, None)
                if self.plan.streamed and upstream.status == 200:
                    relay = SseRelay(strip_usage=self.plan.strip_usage)
                    return await self._relay_stream(upstream, relay)
                return await self._relay_whole(upstream)
            finally:
                # Closing (not releasing) drops the connection if the body was not read
                # to the end: that is what makes vLLM abort the request.
                upstream.close()
        except asyncio.CancelledError:
            self.client_gone = True
            phase = CancelPhase.STREAMING if self.ttft is not None else CancelPhase.BEFORE_FIRST
            self.state.metrics.cancellations.labels(phase.value).inc()
            raise
        finally:
            self._record()

    def _fail(self, kind: UpstreamErrorKind, error: ProxyError) -> ProxyError:
        self.error = kind
        self.state.metrics.upstream_errors.labels(kind.value).inc()
        return error

    def _response_headers(self, upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
        headers = client_headers(upstream.headers)
        if self.epoch >= 0:
            headers[QUEUE_HEADER] = f"{self.queued * 1000:.1f}"
        return headers

    async def _relay_whole(self, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        idle = self.state.settings.idle_read_timeout
        chunks: list[bytes] = []
        try:
            while True:
                async with asyncio.timeout(idle):
                    chunk = await upstream.content.readany()
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError as exc:
            raise self._fail(
                UpstreamErrorKind.TIMEOUT,
                GatewayTimeout(f"The upstream stopped sending for {idle:g} s."),
            ) from exc
        except aiohttp.ClientError as exc:
            raise self._fail(
                UpstreamErrorKind.STREAM_CUT,
                BadGateway("The upstream closed the connection before the answer was complete."),
            ) from exc
        body = b"".join(chunks)
        if self.plan.admitted and upstream.status == 200:
            self.usage = _usage_of(body)
        return web.Response(
            status=upstream.status, headers=self._response_headers(upstream), body=body
        )

    async def _relay_stream(
        self, upstream: aiohttp.ClientResponse, relay: SseRelay | None
    ) -> web.StreamResponse:
        """Relay as it arrives: event by event through `relay`, or bytes as they are."""
        idle = self.state.settings.idle_read_timeout
        response = web.StreamResponse(
            status=upstream.status, headers=self._response_headers(upstream)
        )
        await response.prepare(self.request)
        failure: tuple[UpstreamErrorKind, str] | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(idle):
                        chunk = await upstream.content.readany()
                except TimeoutError:
                    failure = (UpstreamErrorKind.TIMEOUT, f"no data from upstream for {idle:g} s")
                    break
                except aiohttp.ClientError:
                    failure = (UpstreamErrorKind.STREAM_CUT, "upstream closed the stream")
                    break
                if not chunk:
                    break
                if relay is None:
                    await response.write(chunk)
                    continue
                out, first = relay.feed(chunk)
                if first:
                    self.ttft = time.perf_counter() - self.sent
                if out:
                    await response.write(out)
            if relay is None:
                if failure is not None and self.request.transport is not None:
                    # No event format to report the failure in: cut the client's
                    # connection too, so it cannot take a truncated body for whole.
                    self.request.transport.abort()
                    return response
            else:
                if failure is None and relay.flush().strip():
                    failure = (UpstreamErrorKind.STREAM_CUT, "upstream ended mid-event")
                if failure is not None:
                    self._fail(failure[0], BadGateway(failure[1]))
                    await response.write(_stream_error(failure))
                self.usage = relay.usage
                self.content_events = relay.content_events
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            self.client_gone = True
            self.state.metrics.cancellations.labels(CancelPhase.STREAMING.value).inc()
        return response

    def _record(self) -> None:
        if not self.plan.admitted:
            return
        end = time.perf_counter()
        tokens: int | None = None
        prompt: int | None = None
        if self.usage is not None:
            tokens = _int_or_none(self.usage.get("completion_tokens"))
            prompt = _int_or_none(self.usage.get("prompt_tokens"))
        elif self.plan.streamed and self.content_events:
            tokens = self.content_events  # one token per chunk is vLLM's default
        outcome = classify(self.status, self.error, self.client_gone)
        sample = Sample(
            outcome=outcome,
            status=self.status,
            e2e=end - self.sent,
            ttft=self.ttft if outcome is Outcome.SUCCESS else None,
            output_tokens=tokens,
            prompt_tokens=prompt,
            epoch=self.epoch,
            streamed=self.plan.streamed,
            error=self.error,
        )
        self.state.record(sample)


def _stream_error(failure: tuple[UpstreamErrorKind, str]) -> bytes:
    """An SSE error event, as vLLM sends on a failure mid-stream: the OpenAI SDK raises
    APIError on it instead of taking a truncated answer for a complete one."""
    kind, message = failure
    error = {"message": message, "type": "bad_gateway", "code": f"upstream_{kind.value}"}
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def _usage_of(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    usage = payload.get("usage") if isinstance(payload, dict) else None
    return usage if isinstance(usage, dict) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
