"""An upstream that routes the way vLLM's server does (uvicorn percent-decodes the path;
Starlette matches each route as `^path$` with Python's `re`, case-sensitive, and answers
a trailing slash with a 307), and counts the requests that reached a generation route.
Checked against a real Starlette for the cases in tests/hostile: it is the stricter
judge of "no bypass" than the simulator, whose aiohttp router matches exactly."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

GENERATION = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
_ROUTES = [re.compile(f"^{re.escape(path)}$") for path in GENERATION]


@dataclass
class RouterModel:
    url: str = ""
    generation_hits: int = 0


KEY = web.AppKey("router_model", RouterModel)


async def _handle(request: web.Request) -> web.StreamResponse:
    model = request.app[KEY]
    path = unquote(request.raw_path.partition("?")[0])  # what uvicorn puts in scope["path"]
    await request.read()
    if any(route.match(path) for route in _ROUTES):
        if request.method != "POST":
            return web.json_response({"detail": "Method Not Allowed"}, status=405)
        model.generation_hits += 1
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return web.json_response({"choices": [{"text": "x"}], "usage": usage})
    if path.endswith("/") and path != "/":
        return web.Response(status=307, headers={"Location": path.rstrip("/")})
    return web.json_response({"detail": "Not Found"}, status=404)


@asynccontextmanager
async def running_router_model() -> AsyncIterator[RouterModel]:
    app = web.Application()
    model = app[KEY] = RouterModel()
    app.router.add_route("*", r"/{tail:[\s\S]*}", _handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    model.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield model
    finally:
        await runner.cleanup()
