"""HTTP handlers: vLLM's OpenAI routes, /health, /metrics and the /sim/faults control.

A generation request becomes a sequence in the engine; its handler sleeps on the
sequence's event and, when woken, writes the tokens the runner released since its
previous write as one SSE event (one token per event at the default stream interval).
However the handler ends (finished, client gone, cancelled), `runner.release` aborts
what is left of the sequence, so its KV blocks are freed.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from proxy.sim.batching import describe
from proxy.sim.engine import Engine, SeqState
from proxy.sim.faults import Faults, error_type
from proxy.sim.protocol import (
    GenRequest,
    Kind,
    Shaper,
    SimHTTPError,
    error_body,
    parse_request,
    token_text,
)
from proxy.sim.responses import ResponsesShaper, parse_responses_request
from proxy.sim.runner import EngineRunner, SeqHandle


@dataclass
class SimState:
    engine: Engine
    runner: EngineRunner
    registry: CollectorRegistry
    rng: random.Random
    faults: Faults = field(default_factory=Faults)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.engine.slowdown = faults.slowdown


SIM_KEY = web.AppKey("sim_state", SimState)

_CONTROL_PATHS = ("/metrics", "/sim/")


def _error(status: int, message: str, type_: str) -> web.Response:
    return web.json_response(error_body(status, message, type_), status=status)


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[SIM_KEY]
    faults = state.faults
    if (faults.refuse or faults.hang) and not request.path.startswith(_CONTROL_PATHS):
        if faults.refuse:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing to answer on a closed connection
        await state.closing.wait()  # hang: only shutdown or the client ends this
        return _error(503, "simulator shutting down", "ServiceUnavailable")
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.json_response({"detail": "Not Found"}, status=404)
    except web.HTTPMethodNotAllowed:
        return web.json_response({"detail": "Method Not Allowed"}, status=405)


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def models(request: web.Request) -> web.Response:
    profile = request.app[SIM_KEY].engine.profile
    name = profile.served_model_name
    card = {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "vllm",
        "root": name,
        "parent": None,
        "max_model_len": profile.max_model_len,
    }
    return web.json_response({"object": "list", "data": [card]})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[SIM_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "chat")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "completion")


async def responses(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "responses")


def _parse(kind: Kind, raw: bytes, served_model: str, max_model_len: int) -> GenRequest:
    if kind == "responses":
        return parse_responses_request(raw, served_model, max_model_len)
    return parse_request(kind, raw, served_model, max_model_len)


def _shaper(req: GenRequest) -> Shaper | ResponsesShaper:
    return ResponsesShaper(req) if req.kind == "responses" else Shaper(req)


async def _generate(request: web.Request, kind: Kind) -> web.StreamResponse:
    state = request.app[SIM_KEY]
    profile = state.engine.profile
    try:
        req = _parse(kind, await request.read(), profile.served_model_name, profile.max_model_len)
    except SimHTTPError as exc:
        return web.json_response(exc.body(), status=exc.status)
    faults = state.faults
    if faults.error_rate > 0 and state.rng.random() < faults.error_rate:
        status = faults.error_status
        return _error(status, f"injected fault: status {status}", error_type(status))
    handle = state.runner.submit(
        req.prompt_tokens, req.max_tokens, ignore_eos=req.ignore_eos, stream=req.stream
    )
    try:
        if req.stream:
            return await _stream(request, req, handle, faults.cut_after_chunks)
        return await _whole(req, handle)
    finally:
        state.runner.release(handle)


async def _whole(req: GenRequest, handle: SeqHandle) -> web.Response:
    seq = handle.seq
    while not handle.complete:
        await handle.event.wait()
        handle.event.clear()
    if seq.state is SeqState.ABORTED:
        return _error(503, "simulator shutting down", "ServiceUnavailable")
    text = token_text(0, seq.output_tokens)
    body = _shaper(req).full(text, seq.finish_reason, seq.output_tokens)
    return web.json_response(body)


async def _stream(
    request: web.Request, req: GenRequest, handle: SeqHandle, cut_after: int | None
) -> web.StreamResponse:
    seq, shaper = handle.seq, _shaper(req)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    chunks = sent = 0

    async def send(data: bytes) -> None:
        nonlocal chunks
        if cut_after is not None and chunks >= cut_after:
            if request.transport is not None:
                request.transport.abort()  # a real cut: no [DONE], no final chunk
            raise asyncio.CancelledError
        await response.write(data)
        chunks += 1

    try:
        for event in shaper.opening():
            await send(event)
        while True:
            await handle.event.wait()
            handle.event.clear()
            if seq.state is SeqState.ABORTED:
                break
            released = handle.released
            finished = handle.complete
            if released > sent or finished:
                reason = seq.finish_reason if finished else None
                for event in shaper.step(token_text(sent, released - sent), reason):
                    await send(event)
                sent = released
            if finished:
                break
        if seq.state is SeqState.FINISHED:
            for event in shaper.closing(seq.output_tokens, seq.finish_reason):
                await send(event)
        await response.write_eof()
    except ConnectionError:
        pass  # client gone; the caller's `finally` aborts the sequence
    return response


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].faults.model_dump())


async def post_faults(request: web.Request) -> web.Response:
    state = request.app[SIM_KEY]
    try:
        update = json.loads(await request.read())
        if not isinstance(update, dict):
            raise ValueError("the body must be a JSON object")
        state.set_faults(state.faults.merged(update))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return _error(400, problems, "BadRequestError")
    except ValueError as exc:
        return _error(400, f"malformed body: {exc}", "BadRequestError")
    return web.json_response(state.faults.model_dump())


async def delete_faults(request: web.Request) -> web.Response:
    state = request.app[SIM_KEY]
    state.set_faults(Faults())
    return web.json_response(state.faults.model_dump())


async def sim_state(request: web.Request) -> web.Response:
    """The engine at a glance (not a vLLM route): handy for scenarios and debugging."""
    state = request.app[SIM_KEY]
    e = state.engine
    return web.json_response(
        {
            "profile": e.profile.name,
            "speed": state.runner.speed,
            "sim_time": e.now,
            "steps": state.runner.steps,
            "running": e.num_running,
            "waiting": e.num_waiting,
            "kv_cache_usage": e.kv_usage,
            "num_gpu_blocks": e.blocks.num_blocks,
            "preemptions": e.stats.preemptions,
            "batching": describe(e.batching),
            "batches": e.stats.batches,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/responses", responses)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/sim/faults", get_faults)
    app.router.add_post("/sim/faults", post_faults)
    app.router.add_delete("/sim/faults", delete_faults)
    app.router.add_get("/sim/state", sim_state)
