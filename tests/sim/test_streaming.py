"""Writers coalesce tokens into chunks instead of writing one chunk per engine step."""

import asyncio
import json
import time

import aiohttp

from proxy.sim import running_sim
from proxy.sim.profiles import PROFILES

MODEL = PROFILES["h100-llama3-8b"].served_model_name


async def test_a_fast_stream_sends_fewer_chunks_than_tokens_and_loses_none() -> None:
    body = {
        "model": MODEL,
        "prompt": "count",
        "max_tokens": 500,
        "ignore_eos": True,
        "stream": True,
    }
    async with (
        running_sim(speed=1000) as sim,
        aiohttp.ClientSession() as http,
        http.post(f"{sim.url}/v1/completions", json=body) as resp,
    ):
        events = [e for e in (await resp.text()).split("\n\n") if e]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events if e != "data: [DONE]"]
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert len(text.split()) == 500
    assert len(chunks) < 250


async def test_concurrent_streams_all_complete_and_leave_no_blocks() -> None:
    body = {"model": MODEL, "prompt": "x" * 400, "max_tokens": 50, "stream": True}
    async with running_sim(speed=100, seed=5) as sim, aiohttp.ClientSession() as http:

        async def one() -> bytes:
            async with http.post(f"{sim.url}/v1/completions", json=body) as resp:
                return await resp.read()

        bodies = await asyncio.gather(*(one() for _ in range(64)))
        assert all(b.endswith(b"data: [DONE]\n\n") for b in bodies)
        assert sim.engine.blocks.used == 0 and not sim.engine.has_work
        assert sum(sim.engine.stats.finished.values()) == 64


async def test_the_engine_never_runs_ahead_of_wall_time_times_speed() -> None:
    # Without pacing, 200 decode steps (~1.2 simulated s) would finish at once.
    body = {"model": MODEL, "prompt": "go", "max_tokens": 200, "ignore_eos": True}
    speed = 10.0
    async with running_sim(speed=speed) as sim, aiohttp.ClientSession() as http:
        async with http.post(f"{sim.url}/v1/completions", json=body) as resp:
            assert resp.status == 200
        pacer = sim.state.runner.pacer
        lead = sim.engine.now - pacer.to_sim(time.monotonic())
    assert sim.engine.stats.generation_tokens == 200
    assert lead <= pacer.granularity * speed
