"""What arrives on the data port: the plan for one request (admitted? streamed? ask
upstream for usage?), its priority class and queue deadline, its body (bounded in size
and in the time between reads) and the headers that go on to the upstream and come
back to the client. The path a plan is made for is the canonical one (`paths.py`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDict

from proxy.errors import (
    AmbiguousPath,
    BadRequest,
    BodyTooLarge,
    RequestTimeout,
    UnsupportedTransferCoding,
)
from proxy.limiter import Priority
from proxy.server.errors import SERVER
from proxy.server.forwarded import ForwardingPolicy, is_forwarding_header
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
# The upstream is asked for `identity` so usage can be read; an upstream that compresses
# anyway is decoded by the session (these encodings), and the client gets plain bytes.
_NOT_FORWARDED = _HOP_BY_HOP | {"accept-encoding"}
_NOT_RETURNED = _HOP_BY_HOP
_DECODED = frozenset({"gzip", "deflate", "br", "zstd", "identity"})
# aiohttp's server decodes request bodies in these; the decoded body goes on without
# the header (the upstream would decode it a second time).
_REQUEST_DECODED = frozenset({"gzip", "deflate", "br", "zstd"})

QUEUE_HEADER = "x-sla-proxy-queue-ms"
QUEUE_TIMEOUT_HEADER = "x-queue-timeout"


@dataclass(frozen=True, slots=True)
class Plan:
    """What the proxy does with one request, decided from its method, path and body."""

    admitted: bool  # takes a permit: a generation request
    streamed: bool
    strip_usage: bool  # the proxy asked upstream for usage; the client did not
    body: bytes


def is_admitted(method: str, path: str, admitted_paths: frozenset[str]) -> bool:
    """A generation request takes a permit. `path` is canonical; a spelling of an admitted
    route in other letter case is refused: vLLM's router is case-sensitive (404), but an
    upstream that is not would run it without a permit."""
    if path in admitted_paths:
        return method.upper() == "POST"  # the client library sends the method upper-cased
    lowered = path.lower()
    if any(lowered == admitted.lower() for admitted in admitted_paths):
        raise AmbiguousPath("Routes are case-sensitive; use the lower-case spelling.")
    return False


def plan_request(method: str, path: str, body: bytes, admitted_paths: frozenset[str]) -> Plan:
    admitted = is_admitted(method, path, admitted_paths)
    if not admitted or not body:
        return Plan(admitted, False, False, body)
    try:
        payload = json.loads(body)
    except ValueError:
        # Invalid JSON or UTF-8, digits beyond Python's limit: forwarded unchanged, the
        # upstream answers its own 400.
        return Plan(admitted, False, False, body)
    except RecursionError:
        # Nesting deeper than a JSON parser's stack is no OpenAI request, and the same
        # bomb is not worth a permit nor the upstream's parser.
        raise BadRequest("The request body is nested too deeply.") from None
    if not isinstance(payload, dict) or payload.get("stream") is not True:
        return Plan(admitted, False, False, body)
    options = payload.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return Plan(admitted, True, False, body)
    if path not in _USAGE_PATHS or (options is not None and not isinstance(options, dict)):
        return Plan(admitted, True, False, body)
    payload["stream_options"] = {**(options or {}), "include_usage": True}
    return Plan(admitted, True, True, json.dumps(payload).encode())


_USAGE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


def priority_of(request: web.Request, settings: Settings) -> Priority:
    """A mapped API key's class is a ceiling: the header may lower it, never raise it.
    Without a mapped key the header counts only with --trust-priority-header."""
    asked = _named_priority(request.headers.get(settings.priority_header))
    mapped = _mapped_priority(request, settings)
    if mapped is not None:
        return asked if asked is not None and asked.rank > mapped.rank else mapped
    if asked is not None and settings.trust_priority_header:
        return asked
    return Priority.NORMAL


def _named_priority(value: str | None) -> Priority | None:
    if value is None:
        return None
    try:
        return Priority(value.strip().lower())
    except ValueError:
        return None  # unknown names count as no header, never as an error


def _mapped_priority(request: web.Request, settings: Settings) -> Priority | None:
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("bearer "):
        return None
    mapped = settings.api_key_priorities.get(auth[7:].strip())
    return None if mapped is None else Priority(mapped)


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


async def read_body(request: web.Request, limit: int, idle: float) -> bytes:
    """The whole body, at most `limit` bytes, with at most `idle` seconds between two
    reads (nginx's client_body_timeout): a client trickling its body cannot hold the
    connection, nor a permit, which is only asked for once the body is in."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"Request body of {request.content_length} bytes exceeds {limit}.")
    codings = request.headers.get("Transfer-Encoding")
    if codings is not None and [c.strip().lower() for c in codings.split(",")] != ["chunked"]:
        raise UnsupportedTransferCoding("Only the chunked transfer coding is supported.")
    chunks: list[bytes] = []
    size = 0  # after any Content-Encoding is decoded: a compressed bomb stops at `limit`
    content = request.content
    while True:
        try:
            # What is already buffered needs no timer (a small body is, whole).
            chunk = content.read_nowait()
            if not chunk and not content.at_eof():
                async with asyncio.timeout(idle):
                    chunk = await content.readany()
        except TimeoutError:
            raise RequestTimeout(f"No request body data for {idle:g} s.") from None
        except (RequestPayloadError, HttpProcessingError):
            # Broken chunked framing, a body that does not decode as its Content-Encoding
            raise BadRequest("The request body could not be read.") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"Request body exceeds {limit} bytes.")
        chunks.append(chunk)


def upstream_headers(request: web.Request, policy: ForwardingPolicy) -> list[tuple[str, str]]:
    """The request's headers for the upstream, in order: hop-by-hop ones (and those its
    Connection header names) dropped, forwarding ones replaced by the policy's. A list:
    the client library copies headers into its own multidict anyway."""
    incoming = request.headers
    connection = incoming.get("Connection")
    dropped = _NOT_FORWARDED
    if connection is not None:
        dropped = dropped | {token.strip().lower() for token in connection.split(",")}
    headers = [
        (name, value)
        for name, value in incoming.items()
        if (lowered := name.lower()) not in dropped
        and not is_forwarding_header(lowered)
        and not (lowered == "content-encoding" and value.lower() in _REQUEST_DECODED)
    ]
    headers += policy.headers(
        incoming.items(), request.remote, request.scheme, request.host or None
    )
    headers.append(("Accept-Encoding", "identity"))  # any the client sent was dropped above
    return headers


def client_headers(upstream: Mapping[str, str]) -> CIMultiDict[str]:
    """The upstream's response headers for the client. Content-Encoding goes when the
    session decoded the body (gzip, deflate; br and zstd with their libraries), and
    stays when it did not, so the client can still decode what it gets. Without the
    upstream's own Server header, the proxy names itself (never aiohttp's version)."""
    headers = CIMultiDict(
        (name, value)
        for name, value in upstream.items()
        if name.lower() not in _NOT_RETURNED
        and not (name.lower() == "content-encoding" and value.lower() in _DECODED)
    )
    headers.setdefault("Server", SERVER)
    return headers
