"""A client that goes away frees its slot and aborts its upstream request (LiteLLM's
most reported bugs: upstream not cancelled, leaked concurrency slots)."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from proxy.server.admin import status_of
from proxy.server.app import RunningProxy
from proxy.sim.app import SimHandle
from tests.helpers.metrics import metric
from tests.helpers.polling import eventually
from tests.helpers.settings import ProxyFactory

LONG = {
    "model": "tiny-llama",
    "messages": [{"role": "user", "content": "Tell me a long story."}],
    "max_tokens": 2000,
    "ignore_eos": True,
}


async def test_disconnect_mid_stream_aborts_upstream_and_frees_the_slot(
    proxy: RunningProxy, sim: SimHandle
) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{proxy.url}/v1/chat/completions", json={**LONG, "stream": True}
        )
        assert response.status == 200
        await response.content.readuntil(b"\n\n")  # the stream is flowing
        assert proxy.state.admission.limiter.inflight == 1
        assert sim.engine.num_running == 1
        response.close()  # the client goes away
    await eventually(lambda: sim.engine.num_running == 0, what="sequence aborted upstream")
    await eventually(lambda: proxy.state.admission.limiter.inflight == 0, what="permit released")
    streaming = metric(proxy.state, "proxy_client_cancellations_total", phase="streaming")
    assert streaming == 1


async def test_disconnect_while_waiting_for_a_whole_answer(
    proxy: RunningProxy, sim: SimHandle
) -> None:
    async def whole_answer() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{proxy.url}/v1/chat/completions", json=LONG) as response,
        ):
            await response.read()

    task = asyncio.create_task(whole_answer())
    await eventually(lambda: sim.engine.num_running == 1, what="request running upstream")
    task.cancel()
    await eventually(lambda: sim.engine.num_running == 0, what="sequence aborted upstream")
    await eventually(lambda: proxy.state.admission.limiter.inflight == 0, what="permit released")
    before_first = metric(
        proxy.state, "proxy_client_cancellations_total", phase="before_first_token"
    )
    assert before_first == 1


async def test_disconnect_while_queued_leaves_the_queue(
    make_proxy: ProxyFactory, sim: SimHandle
) -> None:
    async with make_proxy(initial_limit=1, min_limit=1, max_limit=1) as proxy:

        async def call() -> None:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{proxy.url}/v1/chat/completions", json=LONG) as response,
            ):
                await response.read()

        holder = asyncio.create_task(call())
        await eventually(lambda: proxy.state.admission.limiter.inflight == 1, what="first admitted")
        waiter = asyncio.create_task(call())
        await eventually(lambda: proxy.state.admission.limiter.queued == 1, what="second queued")
        waiter.cancel()
        await eventually(lambda: proxy.state.admission.limiter.queued == 0, what="left the queue")
        queued = metric(proxy.state, "proxy_client_cancellations_total", phase="queued")
        assert queued == 1
        holder.cancel()
        await eventually(
            lambda: proxy.state.admission.limiter.inflight == 0, what="permit released"
        )
        await eventually(lambda: sim.engine.num_running == 0, what="aborted upstream")
        status = json.loads(json.dumps(status_of(proxy.state)))
        assert status["inflight"] == 0 and status["queued"] == 0
