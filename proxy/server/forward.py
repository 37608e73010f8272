"""Forwarding: one request from the client to the upstream and back.

Latencies are read from `time.perf_counter`: uvloop's `loop.time()` only ticks in
whole milliseconds, too coarse for TPOT or the proxy's own overhead.

The request target is parsed once into its canonical path (`paths.py`); admission is
decided on that path and the upstream URL is built from it, never from the raw target.
A generation request takes a ticket from admission first; the ticket lives exactly
as long as the upstream request (`async with`), so no path can leak its permit, and
its outcome goes back through the ticket. Everything else passes straight through.
Streams are relayed event by event as they arrive. A client that goes away cancels
this handler (handler cancellation is on), which closes the upstream connection,
so vLLM aborts the sequence and frees its KV cache. Every handler is tracked by the
drain (`shutdown.py`), which cuts it at the shutdown deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy.admission import Ticket
from proxy.core.ejection import Event
from proxy.core.outcome import UpstreamErrorKind, status_error
from proxy.errors import BadGateway, GatewayTimeout, ProxyError, UpstreamUnavailable
from proxy.pool import Lease, Member
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
from proxy.server.meter import RequestMeter
from proxy.server.paths import Target, parse_target
from proxy.server.reads import IdleTimeout, IdleWatch
from proxy.server.shutdown import Cut, DrainDeadline
from proxy.server.sse import SseRelay
from proxy.server.state import CURRENT_MEMBER, STATE, ProxyState

log = logging.getLogger("sla_proxy.forward")

# Client-facing messages say what happened, never where: the upstream's address and
# the OS error go to the log and the metrics only.
_MESSAGES = {
    UpstreamErrorKind.CONNECT: "The upstream server could not be reached.",
    UpstreamErrorKind.TIMEOUT: "The upstream server did not answer in time.",
    UpstreamErrorKind.STREAM_CUT: "The upstream server broke off its answer.",
}
_SHUTTING_DOWN = "The proxy is shutting down; retry on another replica."


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    arrived = time.perf_counter()
    if state.drain.draining:
        raise _shutting_down(state)
    try:
        async with asyncio.timeout(None) as scope:
            with state.drain.track(scope) as cut:
                return await _handle(request, state, cut, arrived)
    except TimeoutError:
        if cut.fired:  # the drain deadline came before the upstream's answer
            raise _shutting_down(state) from None
        raise


async def _handle(
    request: web.Request, state: ProxyState, cut: Cut, arrived: float
) -> web.StreamResponse:
    settings = state.settings
    target = parse_target(request.raw_path)
    body = await read_body(request, settings.max_body_bytes, settings.client_body_timeout)
    plan = plan_request(request.method, target.path, body, state.admitted_paths)
    state.pool.check()
    if not plan.admitted:
        return await _passthrough(request, state, target, plan, cut, arrived)
    priority = priority_of(request, settings)
    async with state.pool.acquire(
        priority, queue_timeout_of(request, settings), streamed=plan.streamed
    ) as lease:
        sent = time.perf_counter()
        state.overhead.observe(max(0.0, sent - arrived - lease.queued_seconds))
        meter = RequestMeter(sent, streamed=plan.streamed, epoch=lease.ticket.epoch)
        try:
            return await _forward(request, state, target, plan, cut, lease, meter)
        except asyncio.CancelledError:
            meter.left()
            raise
        finally:
            # The ticket of the member it ended on (a fail-over moves it).
            lease.ticket.report(meter.sample(time.perf_counter()))


def _shutting_down(state: ProxyState) -> UpstreamUnavailable:
    return UpstreamUnavailable(_SHUTTING_DOWN, retry_after=state.settings.upstream_probe_interval)


async def _passthrough(
    request: web.Request, state: ProxyState, target: Target, plan: Plan, cut: Cut, arrived: float
) -> web.StreamResponse:
    """Not a generation request: relayed as it is, no permit, no sample."""
    state.overhead.observe(max(0.0, time.perf_counter() - arrived))
    try:
        upstream = await _dispatch(request, state, target, plan.body)
    except _UpstreamFailed as failed:
        raise failed.answer() from failed
    cut.relaying(upstream)
    try:
        return await _relay_raw(request, state, upstream, client_headers(upstream.headers))
    finally:
        upstream.close()


async def _forward(
    request: web.Request,
    state: ProxyState,
    target: Target,
    plan: Plan,
    cut: Cut,
    lease: Lease,
    meter: RequestMeter,
) -> web.StreamResponse:
    try:
        upstream = await _dispatch(request, state, target, plan.body, lease, meter)
    except _UpstreamFailed as failed:
        meter.failed(failed.kind)
        raise failed.answer() from failed
    ticket = lease.ticket
    cut.relaying(upstream)
    try:
        meter.answered(upstream.status)
        kind = status_error(upstream.status)
        if kind is not None:
            state.upstream_error(kind)
        headers = client_headers(upstream.headers)
        headers[QUEUE_HEADER] = f"{ticket.queued_seconds * 1000:.1f}"
        if plan.streamed and upstream.status == 200:
            relay = SseRelay(strip_usage=plan.strip_usage)
            return await _relay_events(request, state, upstream, headers, relay, meter, ticket)
        return await _relay_whole(state, upstream, headers, meter)
    finally:
        # Closing (not releasing) drops the connection if the body was not read to
        # the end: that is what makes vLLM abort the request.
        upstream.close()


async def _dispatch(
    request: web.Request,
    state: ProxyState,
    target: Target,
    body: bytes,
    lease: Lease | None = None,
    meter: RequestMeter | None = None,
) -> aiohttp.ClientResponse:
    """Send to the lease's member (a request without a permit: the member with the most
    headroom); when it could not be reached at all, nothing went upstream, so once more
    on another member. Nothing is retried once the request was sent."""
    pool = state.pool
    member = lease.member if lease is not None else pool.route()
    if member is None:
        raise pool.unavailable()
    try:
        return await _send(request, state, target, body, member)
    except _UpstreamFailed as failed:
        if not failed.unsent:
            raise
        now = time.perf_counter()
        if lease is not None:
            sent = meter.sent if meter is not None else now
            if not lease.fail_over(now - sent):
                raise
            other: Member | None = lease.member
            if meter is not None:  # measured from the second attempt, on its member
                meter.sent, meter.epoch = now, lease.ticket.epoch
        else:
            other = pool.route(exclude=member)
        if other is None or other is member:
            raise
    log.info("retrying on upstream %s", other.name)
    return await _send(request, state, target, body, other)


async def _send(
    request: web.Request, state: ProxyState, target: Target, body: bytes, member: Member
) -> aiohttp.ClientResponse:
    """The upstream's response headers; a failure before them raises `_UpstreamFailed`."""
    settings, pool = state.settings, state.pool
    CURRENT_MEMBER.set(member)
    try:
        async with asyncio.timeout(settings.first_byte_timeout):
            upstream = await state.session.request(
                request.method,
                target.upstream_url(member.url),
                headers=upstream_headers(request, state.forwarding),
                data=body or None,
                allow_redirects=False,
            )
    except TimeoutError as exc:
        log.warning("upstream sent no response within %g s", settings.first_byte_timeout)
        raise _failed(state, UpstreamErrorKind.TIMEOUT) from exc
    except aiohttp.ClientConnectorError as exc:
        log.warning("cannot connect to the upstream %s: %s", member.url, exc)
        pool.record(member, Event.CONNECT)
        raise _failed(state, UpstreamErrorKind.CONNECT, unsent=True) from exc
    except aiohttp.ClientError as exc:
        # Accepted and then closed (or reset, or answered with garbage) before any
        # response: as unable to serve as a refused connect, so it counts the same
        # (but the request may have reached it: never retried).
        log.warning("upstream %s failed before answering: %r", member.url, exc)
        pool.record(member, Event.CLOSED)
        raise _failed(state, UpstreamErrorKind.CONNECT) from exc
    pool.record(member, Event.SERVER_ERROR if upstream.status >= 500 else Event.ANSWERED)
    return upstream


async def _chunks(
    state: ProxyState,
    upstream: aiohttp.ClientResponse,
    before_wait: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives; silence or a broken connection raise.
    `before_wait`: called before the first read that has to wait (see `IdleWatch`)."""
    watch = IdleWatch(upstream.content, state.settings.idle_read_timeout, before_wait)
    try:
        while True:
            try:
                chunk = await watch.read()
            except IdleTimeout as exc:
                log.warning("upstream sent nothing for %g s mid-answer", watch.idle)
                raise _failed(state, UpstreamErrorKind.TIMEOUT) from exc
            except aiohttp.ClientError as exc:
                log.warning("upstream closed the connection mid-answer: %r", exc)
                raise _failed(state, UpstreamErrorKind.STREAM_CUT) from exc
            if not chunk:
                return
            yield chunk
    finally:
        watch.close()


async def _relay_whole(
    state: ProxyState,
    upstream: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    meter: RequestMeter,
) -> web.StreamResponse:
    try:
        body = b"".join([chunk async for chunk in _chunks(state, upstream)])
    except _UpstreamFailed as failed:
        meter.failed(failed.kind)
        raise failed.answer() from failed
    except DrainDeadline:
        meter.left()  # cut by our shutdown: says nothing about the upstream's load
        raise _shutting_down(state) from None
    if upstream.status == 200:
        meter.usage = _usage_of(body)
    return web.Response(status=upstream.status, headers=headers, body=body)


async def _relay_raw(
    request: web.Request,
    state: ProxyState,
    upstream: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
) -> web.StreamResponse:
    """Bytes as they arrive. On a failure mid-body there is no event format to report
    it in: cut the client's connection too, so it cannot take a truncated body for whole."""
    response = web.StreamResponse(status=upstream.status, headers=headers)
    await response.prepare(request)
    try:
        async for chunk in _chunks(state, upstream):
            await response.write(chunk)
    except (_UpstreamFailed, DrainDeadline):
        if request.transport is not None:
            request.transport.abort()
        return response
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        return response  # the client left
    await response.write_eof()
    return response


async def _relay_events(
    request: web.Request,
    state: ProxyState,
    upstream: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    relay: SseRelay,
    meter: RequestMeter,
    ticket: Ticket,
) -> web.StreamResponse:
    """Event by event through `relay`. On a failure mid-stream the client gets an SSE
    error event in the stream's dialect (chat's `data: {"error": ...}`, the Responses
    API's `error` event), so the OpenAI SDK raises instead of returning a truncated
    answer."""
    # Headers wait for the first bytes when those are at hand (one write, not two);
    # they go out alone before the first read that has to wait for the upstream.
    response = _Stream(status=upstream.status, headers=headers)
    writer = await response.prepare(request)
    content = upstream.content
    failure: _UpstreamFailed | None = None
    deadline = False
    tail = b""  # the last bytes, written with the end of the stream
    try:
        try:
            async for chunk in _chunks(state, upstream, writer.send_headers if writer else None):
                out, first = relay.feed(chunk)
                now = time.perf_counter()
                if first:
                    meter.first_content(now)
                    ticket.first_token(now)
                ticket.progress(relay.content_events, now)
                if out:
                    if content.at_eof():  # nothing more can come: this is the last write
                        tail = out
                    else:
                        await response.write(out)
        except _UpstreamFailed as failed:
            failure = failed
        except DrainDeadline:
            deadline = True
        if failure is None and not deadline and relay.flush().strip():
            log.warning("upstream ended its stream mid-event")
            failure = _failed(state, UpstreamErrorKind.STREAM_CUT)
        meter.streamed_events(relay.content_events, relay.usage)
        if failure is not None:
            meter.failed(failure.kind)
            tail += relay.error_event(_stream_error(failure.kind))
        elif deadline:
            meter.left()  # cut by our shutdown, not the upstream's doing
            shutdown = _error(_SHUTTING_DOWN, "service_unavailable", "shutting_down")
            tail += relay.error_event(shutdown)
        await response.write_eof(tail)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        meter.left()
    return response


class _Stream(web.StreamResponse):
    """A stream whose headers aiohttp buffers until its first body write (as it does
    for a whole `web.Response`) rather than writing them on `prepare`."""

    _send_headers_immediately = False


def _failed(state: ProxyState, kind: UpstreamErrorKind, *, unsent: bool = False) -> _UpstreamFailed:
    state.upstream_error(kind)
    return _UpstreamFailed(kind, unsent=unsent)


class _UpstreamFailed(Exception):
    """The upstream failed: before answering, or mid-answer (silence, a closed connection).
    `unsent`: it could not be reached, so nothing of the request went upstream."""

    def __init__(self, kind: UpstreamErrorKind, *, unsent: bool = False) -> None:
        super().__init__(kind.value)
        self.kind = kind
        self.unsent = unsent

    def answer(self) -> ProxyError:
        message = _MESSAGES.get(self.kind, "The upstream server failed.")
        if self.kind is UpstreamErrorKind.TIMEOUT:
            return GatewayTimeout(message)
        return BadGateway(message)


def _stream_error(kind: UpstreamErrorKind) -> dict[str, object]:
    message = _MESSAGES.get(kind, "The upstream server failed.")
    return _error(message, "bad_gateway", f"upstream_{kind.value}")


def _error(message: str, type_: str, code: str) -> dict[str, object]:
    """The OpenAI error object; the relay frames it in the stream's dialect."""
    return {"message": message, "type": type_, "code": code}


def _usage_of(body: bytes) -> dict[str, object] | None:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    usage = payload.get("usage") if isinstance(payload, dict) else None
    return usage if isinstance(usage, dict) else None
