"""The one place where the proxy's own failures become HTTP answers.

Every answer the proxy makes itself is OpenAI-shaped JSON, so the official SDKs
raise the right exception class (and retry 429/503 after `retry-after-ms`):
`{"error": {"message": ..., "type": ..., "code": ...}}`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from proxy.errors import ProxyError

log = logging.getLogger("sla_proxy.errors")


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
        headers=headers,
    )


def from_proxy_error(error: ProxyError) -> web.Response:
    return json_error(error.status, error.message, error.type, error.code, error.headers())


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ProxyError as error:
        return from_proxy_error(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason, "invalid_request_error", exc.status)
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return json_error(500, "Internal error in the proxy.", "server_error", "proxy_error")


class _JsonErrorHandler(RequestHandler):
    """Malformed request lines or headers never reach a handler; aiohttp answers them
    here, in plain text by default. Answer in the same JSON shape as everything else."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if already sent
        text = "Malformed HTTP request." if status == 400 else "Internal error in the proxy."
        if message and status == 400:
            text = f"Malformed HTTP request: {message}"
        response = json_error(
            status, text, "invalid_request_error" if status < 500 else "server_error", status
        )
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class ProxyRunner(web.AppRunner):
    """AppRunner whose low-level errors are JSON, with handler cancellation on so a
    client that disconnects cancels its handler (and so its upstream request)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        kwargs.setdefault("access_log", None)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server
