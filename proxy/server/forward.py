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
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy.core.outcome import Outcome, Sample, UpstreamErrorKind, classify
from proxy.errors import BadGateway, GatewayTimeout, ProxyError, Shed, UpstreamUnavailable
from proxy.server.inbound import (
    QUEUE_HEADER,
    Plan,
    client_headers,
    plan_request,
    priority_of,
    queue_timeout_of,
    read_body,
    upstream_headers,
)
from proxy.server.sse import SseRelay
from proxy.server.state import STATE, CancelPhase, ProxyState

log = logging.getLogger("sla_proxy.forward")


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    arrived = time.perf_counter()
    if state.draining:
        raise UpstreamUnavailable(
            "The proxy is shutting down; retry on another replica.",
            retry_after=state.settings.upstream_probe_interval,
        )
    body = await read_body(request, state.settings.max_body_bytes)
    plan = plan_request(request.method, request.path, body, state.admitted_paths)
    if not plan.admitted:
        state.upstream.check()
        return await Forwarder(request, state, plan, arrived, queued=0.0, epoch=-1).run()
    priority = priority_of(request, state.settings)
    state.metrics.arrivals.labels(priority.value).inc()
    state.control.tally.arrivals += 1
    state.upstream.check()
    admitted = False
    try:
        async with state.limiter.acquire(
            priority, queue_timeout_of(request, state.settings)
        ) as permit:
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
        try:
            body = b"".join([chunk async for chunk in self._chunks(upstream)])
        except _UpstreamFailed as failed:
            answer = GatewayTimeout if failed.kind is UpstreamErrorKind.TIMEOUT else BadGateway
            raise self._fail(failed.kind, answer(f"The {failed}.")) from failed
        if self.plan.admitted and upstream.status == 200:
            self.usage = _usage_of(body)
        return web.Response(
            status=upstream.status, headers=self._response_headers(upstream), body=body
        )

    async def _chunks(self, upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The upstream's body as it arrives; silence or a broken connection raise."""
        idle = self.state.settings.idle_read_timeout
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await upstream.content.readany()
            except TimeoutError as exc:
                message = f"upstream sent nothing for {idle:g} s"
                raise _UpstreamFailed(UpstreamErrorKind.TIMEOUT, message) from exc
            except aiohttp.ClientError as exc:
                message = "upstream closed the connection before the answer was complete"
                raise _UpstreamFailed(UpstreamErrorKind.STREAM_CUT, message) from exc
            if not chunk:
                return
            yield chunk

    async def _relay_stream(
        self, upstream: aiohttp.ClientResponse, relay: SseRelay | None
    ) -> web.StreamResponse:
        """Relay as it arrives: event by event through `relay`, or bytes as they are."""
        response = web.StreamResponse(
            status=upstream.status, headers=self._response_headers(upstream)
        )
        await response.prepare(self.request)
        failure: _UpstreamFailed | None = None
        try:
            try:
                async for chunk in self._chunks(upstream):
                    if relay is None:
                        await response.write(chunk)
                        continue
                    out, first = relay.feed(chunk)
                    if first:
                        self.ttft = time.perf_counter() - self.sent
                    if out:
                        await response.write(out)
            except _UpstreamFailed as failed:
                failure = failed
            if relay is None:
                if failure is not None and self.request.transport is not None:
                    # No event format to report the failure in: cut the client's
                    # connection too, so it cannot take a truncated body for whole.
                    self.request.transport.abort()
                    return response
            else:
                if failure is None and relay.flush().strip():
                    failure = _UpstreamFailed(
                        UpstreamErrorKind.STREAM_CUT, "upstream ended mid-event"
                    )
                if failure is not None:
                    self._fail(failure.kind, BadGateway(str(failure)))
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


class _UpstreamFailed(Exception):
    """The upstream broke off an answer it had begun (silence or a closed connection)."""

    def __init__(self, kind: UpstreamErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _stream_error(failure: _UpstreamFailed) -> bytes:
    """An SSE error event, as vLLM sends on a failure mid-stream: the OpenAI SDK raises
    APIError on it instead of taking a truncated answer for a complete one."""
    code = f"upstream_{failure.kind.value}"
    error = {"message": str(failure), "type": "bad_gateway", "code": code}
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
