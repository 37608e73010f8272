"""Property: any interleaving of completions, upstream errors, cut streams and client
aborts leaves nothing behind: no permit in flight, nobody queued, no upstream request
still open, no task left running."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.server.app import running_proxy
from tests.helpers.polling import eventually
from tests.helpers.settings import proxy_settings

BEHAVIOURS = ("ok", "error500", "error429", "error400", "cut")


@dataclass
class Upstream:
    url: str
    open_requests: int = 0


UPSTREAM = web.AppKey("upstream", Upstream)


async def stub_handler(request: web.Request) -> web.StreamResponse:
    upstream = request.app[UPSTREAM]
    upstream.open_requests += 1
    try:
        body = await request.json()
        behaviour, chunks = body["behaviour"], body["chunks"]
        if behaviour.startswith("error"):
            status = int(behaviour[5:])
            error = {"error": {"message": "stub", "type": "x", "code": status}}
            return web.json_response(error, status=status)
        if not body.get("stream"):
            for _ in range(chunks):
                await asyncio.sleep(0)
            usage = {"prompt_tokens": 1, "completion_tokens": chunks}
            return web.json_response({"choices": [{"text": "x" * chunks}], "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index in range(chunks):
            if behaviour == "cut" and index == 1:
                assert request.transport is not None
                request.transport.abort()
                return response
            delta = {"choices": [{"index": 0, "delta": {"content": "t"}}]}
            await response.write(f"data: {json.dumps(delta)}\n\n".encode())
            await asyncio.sleep(0)
        usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": chunks}}
        await response.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        return response
    finally:
        upstream.open_requests -= 1


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    app = web.Application()
    stub = app[UPSTREAM] = Upstream("")
    app.router.add_post("/v1/chat/completions", stub_handler)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stub.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield stub
    finally:
        await runner.cleanup()


request_strategy = st.tuples(
    st.sampled_from(BEHAVIOURS),
    st.booleans(),  # streamed
    st.integers(min_value=1, max_value=6),  # chunks
    st.one_of(st.none(), st.integers(min_value=0, max_value=8)),  # abort after N loop turns
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    requests=st.lists(request_strategy, min_size=1, max_size=10),
    limit=st.integers(min_value=1, max_value=3),
)
async def test_nothing_leaks_whatever_happens(
    upstream: Upstream, requests: list[tuple[str, bool, int, int | None]], limit: int
) -> None:
    baseline = asyncio.all_tasks()
    config = proxy_settings(
        upstream.url, initial_limit=limit, min_limit=1, max_limit=limit, queue_size=4
    )
    async with running_proxy(config) as proxy, aiohttp.ClientSession() as session:

        async def call(behaviour: str, stream: bool, chunks: int) -> None:
            payload = {"behaviour": behaviour, "chunks": chunks, "stream": stream}
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(
                    f"{proxy.url}/v1/chat/completions", json=payload
                ) as response:
                    await response.read()

        tasks = []
        for behaviour, stream, chunks, abort_after in requests:
            task = asyncio.create_task(call(behaviour, stream, chunks))
            tasks.append((task, abort_after))
        for turn in range(10):
            for task, abort_after in tasks:
                if abort_after == turn:
                    task.cancel()
            await asyncio.sleep(0)
        await asyncio.gather(*(task for task, _ in tasks), return_exceptions=True)

        state = proxy.state
        await eventually(lambda: state.admission.limiter.inflight == 0, what="all permits released")
        assert state.admission.limiter.queued == 0
        await eventually(lambda: upstream.open_requests == 0, what="upstream requests closed")
    current = asyncio.current_task()

    def leftover() -> set[asyncio.Task[object]]:
        return {t for t in asyncio.all_tasks() - baseline if not t.done() and t is not current}

    # Connection handlers being cancelled finish within a few loop turns; anything
    # still running after that is a leak.
    await eventually(lambda: not leftover(), within=2.0, what=f"tasks left: {leftover()}")
