"""The one place where the proxy's own failures become HTTP answers.

Every answer the proxy makes itself is OpenAI-shaped JSON, so the official SDKs
raise the right exception class (and retry 429/503 after `retry-after-ms`):
`{"error": {"message": ..., "type": ..., "code": ...}}`.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web

from proxy.errors import ProxyError

log = logging.getLogger("sla_proxy.errors")

# What the proxy's own answers say about the software: the name, never a version.
SERVER = "sla-proxy"


def error_body(message: str, type_: str, code: str | int | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def json_error(
    status: int,
    message: str,
    type_: str,
    code: str | int | None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(error_body(message, type_, code)),
        content_type="application/json",
        headers={"Server": SERVER, **(headers or {})},
    )


def raw_error(
    status: int, message: str, type_: str, code: str, headers: dict[str, str] | None = None
) -> bytes:
    """A whole HTTP/1.1 answer as bytes, for a connection the proxy closes before any
    request of it reached a handler (too many connections, headers too slow)."""
    body = json.dumps(error_body(message, type_, code)).encode()
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        f"Server: {SERVER}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def from_proxy_error(error: ProxyError) -> web.Response:
    return json_error(error.status, error.message, error.type, error.code, error.headers())


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ProxyError as error:
        answer = from_proxy_error(error)
        if error.status == 408:
            answer.force_close()  # the client stopped sending: nothing more to read from it
        return answer
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason, "invalid_request_error", exc.status)
    except Exception:
        # A bug, not an input: the traceback is what fixes it. Inputs never get here.
        log.exception("unexpected error handling %s request", request.method)
        return json_error(500, "Internal error in the proxy.", "server_error", "proxy_error")
