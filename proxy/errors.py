"""The answers the proxy makes itself, as typed exceptions (level 0, no I/O).

Each carries what the HTTP answer needs; `proxy.server.errors` turns any of them
into an OpenAI-shaped JSON response in exactly one place.
"""

from __future__ import annotations

import math
from enum import StrEnum


class ShedReason(StrEnum):
    QUEUE_FULL = "queue_full"
    QUEUE_TIMEOUT = "queue_timeout"
    EXPECTED_WAIT = "expected_wait"
    DISPLACED = "displaced"


class ProxyError(Exception):
    """An answer the proxy gives instead of the upstream's."""

    status: int = 500
    type: str = "server_error"
    code: str = "proxy_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        return {}


class _RetryableError(ProxyError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, retry_after)

    def headers(self) -> dict[str, str]:
        # Retry-After must be whole seconds (RFC 9110); the OpenAI SDKs prefer the
        # millisecond header when present.
        return {
            "Retry-After": str(max(1, math.ceil(self.retry_after))),
            "retry-after-ms": str(max(1, math.ceil(self.retry_after * 1000))),
        }


class Shed(_RetryableError):
    """Admission refused: the upstream is at its SLA limit and the queue cannot help."""

    status = 429
    type = "rate_limit_error"
    code = "overloaded"

    def __init__(self, reason: ShedReason, retry_after: float, message: str = "") -> None:
        super().__init__(
            message or f"Server at capacity ({reason.value}); retry after the indicated time.",
            retry_after,
        )
        self.reason = reason

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "x-sla-proxy-shed-reason": self.reason.value}


class UpstreamUnavailable(_RetryableError):
    """No upstream can serve: it is down (consecutive connect failures) or draining."""

    status = 503
    type = "service_unavailable"
    code = "upstream_unavailable"


class BadGateway(ProxyError):
    status = 502
    type = "bad_gateway"
    code = "upstream_unreachable"


class GatewayTimeout(ProxyError):
    status = 504
    type = "gateway_timeout"
    code = "upstream_timeout"


class BodyTooLarge(ProxyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class BadRequest(ProxyError):
    status = 400
    type = "invalid_request_error"
    code = "bad_request"


class AmbiguousPath(BadRequest):
    """A request target with more than one reading (dot segments, encoded slashes, empty
    segments, ...): refused rather than guessed, so admission and the upstream can never
    disagree about which route a request is for."""

    code = "ambiguous_path"


class RequestTimeout(ProxyError):
    """The client stopped sending its request (headers or body) for too long."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class UnsupportedTransferCoding(ProxyError):
    """A request body in a transfer coding other than chunked (RFC 9112 §6.1: 501)."""

    status = 501
    type = "invalid_request_error"
    code = "unsupported_transfer_coding"
