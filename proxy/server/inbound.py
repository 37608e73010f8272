"""What arrives on the data port: the plan for one request (admitted? streamed? ask
upstream for usage?), its priority class and queue deadline, its body (bounded) and
the headers that go on to the upstream and come back to the client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from proxy.errors import BodyTooLarge
from proxy.limiter import Priority
from proxy.settings import Settings

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


def priority_of(request: web.Request, settings: Settings) -> Priority:
    header = request.headers.get(settings.priority_header)
    if header is not None:
        return Priority.parse(header)
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        mapped = settings.api_key_priorities.get(auth[7:].strip())
        if mapped is not None:
            return Priority(mapped)
    return Priority.NORMAL


def queue_timeout_of(request: web.Request, settings: Settings) -> float | None:
    """The client's own queue deadline (x-queue-timeout, seconds, at most
    --max-queue-timeout); None: the one its SLA targets leave."""
    raw = request.headers.get(QUEUE_TIMEOUT_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if value != value or value < 0:  # NaN or negative: ignore, as unknown priorities are
        return None
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
