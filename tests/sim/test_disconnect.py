"""A client that goes away aborts its sequence and frees its KV blocks promptly."""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.sim import SimHandle, running_sim
from proxy.sim.profiles import PROFILES
from tests.helpers.polling import eventually

MODEL = PROFILES["h100-llama3-8b"].served_model_name
LONG = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "write a book"}],
    "max_tokens": 5000,
    "ignore_eos": True,
}


@pytest.fixture
async def slow_sim() -> AsyncIterator[SimHandle]:
    # Real time: a 5000-token answer would take ~30 s, so it is surely still running.
    async with running_sim(speed=1.0) as handle:
        yield handle


async def test_closing_a_stream_aborts_the_sequence(slow_sim: SimHandle) -> None:
    engine = slow_sim.engine
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{slow_sim.url}/v1/chat/completions", json={**LONG, "stream": True})
        await resp.content.readuntil(b"\n\n")
        assert engine.num_running == 1 and engine.blocks.used > 0
        resp.close()
        await eventually(lambda: engine.num_running == 0)
    assert engine.blocks.used == 0 and engine.stats.aborted == 1


async def test_abandoning_a_non_streamed_request_aborts_the_sequence(
    slow_sim: SimHandle,
) -> None:
    engine = slow_sim.engine
    async with aiohttp.ClientSession() as http:
        request = asyncio.create_task(http.post(f"{slow_sim.url}/v1/chat/completions", json=LONG))
        await eventually(lambda: engine.num_running == 1)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await eventually(lambda: engine.num_running == 0)
    assert engine.blocks.used == 0 and not engine.has_work


async def test_shutdown_ends_running_streams_and_frees_their_blocks() -> None:
    async with running_sim(speed=1.0) as sim, aiohttp.ClientSession() as http:
        resp = await http.post(f"{sim.url}/v1/chat/completions", json={**LONG, "stream": True})
        await resp.content.readuntil(b"\n\n")
        engine = sim.engine
    assert engine.num_running == 0 and engine.blocks.used == 0
    resp.close()
