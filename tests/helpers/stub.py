"""A tiny OpenAI-style SSE server for the load generator's own tests: shaped like
vLLM's stream (role chunk, content chunks, usage-only chunk, [DONE]) with a decode
step that slows once more than `knee` requests run, so throughput plateaus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class StubState:
    step: float = 0.002
    knee: int = 4
    active: int = 0
    fail_every: int = 0  # answer every n-th request with `fail_status`; 0: never
    fail_status: int = 500
    cut_after: int | None = None  # close the stream after this many content chunks
    omit_usage: bool = False
    seen: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)


STATE = web.AppKey("state", StubState)


def _chunk(chat: bool, text: str) -> dict[str, Any]:
    choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
    return {"id": "x", "object": "chunk", "choices": [choice], "usage": None}


async def _generate(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await request.json()
    state.bodies.append(body)
    state.seen += 1
    if state.fail_every and state.seen % state.fail_every == 0:
        error = {"error": {"message": "injected", "type": "x", "code": state.fail_status}}
        return web.json_response(error, status=state.fail_status)
    chat = request.path.endswith("/chat/completions")
    tokens = int(body.get("max_tokens", 16))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    state.active += 1
    try:

        async def send(data: dict[str, Any]) -> None:
            await response.write(b"data: " + json.dumps(data).encode() + b"\n\n")

        if chat:
            role = {"index": 0, "delta": {"role": "assistant", "content": ""}}
            await send({"id": "x", "choices": [role], "usage": None})
        for index in range(tokens):
            await asyncio.sleep(state.step * max(1.0, state.active / state.knee))
            await send(_chunk(chat, f"t{index} "))
            if state.cut_after is not None and index + 1 >= state.cut_after:
                request.transport.close()  # type: ignore[union-attr]
                return response
        if not state.omit_usage:
            usage = {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": tokens + 7}
            await send({"id": "x", "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
    finally:
        state.active -= 1
    return response


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "stub-model", "object": "model"}]})


@asynccontextmanager
async def running_stub(state: StubState | None = None) -> AsyncIterator[tuple[str, StubState]]:
    app = web.Application()
    app[STATE] = state or StubState()
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _generate)
    app.router.add_post("/v1/completions", _generate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", app[STATE]
    finally:
        await runner.cleanup()
