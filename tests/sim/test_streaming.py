"""Streams are shaped as vLLM's: one SSE event per `--stream-interval` tokens, merged
only when all streams together would exceed the simulator's event-rate cap."""

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import pytest

from proxy.scenarios.vtime import run_virtual
from proxy.sim import running_sim
from proxy.sim.engine import Engine
from proxy.sim.profiles import PROFILES
from proxy.sim.runner import EngineRunner
from proxy.sim.streaming import FIRST_AND_LAST_ONLY

MODEL = PROFILES["h100-llama3-8b"].served_model_name


def parse_sse(text: str) -> list[Any]:
    events: list[Any] = []
    for event in text.split("\n\n"):
        if not event:
            continue
        data = event.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def chat_body(tokens: int) -> dict[str, object]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "count"}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def post_stream(url: str, path: str, body: dict[str, object]) -> list[Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}{path}", json=body) as resp:
        assert resp.status == 200
        return parse_sse(await resp.text())


def content_tokens(events: list[Any]) -> list[int]:
    """Words per content event (each simulated token is one word)."""
    counts = []
    for event in events:
        if isinstance(event, dict) and event["choices"]:
            choice = event["choices"][0]
            text = choice.get("delta", {}).get("content") or choice.get("text") or ""
            if text:
                counts.append(len(text.split()))
    return counts


async def test_a_16_token_chat_answer_arrives_as_16_content_events_by_default() -> None:
    async with running_sim(speed=50) as sim:
        events = await post_stream(sim.url, "/v1/chat/completions", chat_body(16))
    role, *content, usage, done = events
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content_tokens(content) == [1] * 16
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    assert all(e["choices"][0]["finish_reason"] is None for e in content[:-1])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 16
    assert done == "[DONE]"


async def test_stream_interval_4_sends_the_first_token_then_every_4th_as_vllm() -> None:
    # vLLM: an output on the first token, then whenever 4 accumulated, and at the finish.
    body = {"model": MODEL, "prompt": "count", "max_tokens": 16, "ignore_eos": True}
    async with running_sim(speed=50, stream_interval=4) as sim:
        events = await post_stream(sim.url, "/v1/completions", {**body, "stream": True})
    assert content_tokens(events) == [1, 4, 4, 4, 3]
    assert events[-1] == "[DONE]"


async def test_streams_over_the_event_cap_are_merged_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"model": MODEL, "prompt": "count", "max_tokens": 300, "ignore_eos": True}
    caplog.set_level(logging.WARNING, logger="proxy.sim")
    async with running_sim(speed=50, max_event_rate=50) as sim:
        streams = await asyncio.gather(
            *(post_stream(sim.url, "/v1/completions", {**body, "stream": True}) for _ in range(2))
        )
        async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/metrics") as resp:
            metrics = await resp.text()
    sent = [len(content_tokens(events)) for events in streams]
    assert all(sum(content_tokens(events)) == 300 for events in streams)  # nothing lost
    assert max(sent) < 300
    coalesced = 600 - sum(sent)  # at interval 1, every token is a vLLM event
    assert f"sim_coalesced_events_total {float(coalesced)}" in metrics
    assert f"sim_stream_events_total {float(sum(sent))}" in metrics
    warnings = [r for r in caplog.records if "events per second" in r.getMessage()]
    assert len(warnings) == 1


async def test_a_non_streamed_request_wakes_its_handler_on_first_and_last_token_only() -> None:
    body = {"model": MODEL, "prompt": "count", "max_tokens": 50, "ignore_eos": True}
    async with running_sim(speed=50) as sim, aiohttp.ClientSession() as http:
        async with http.post(f"{sim.url}/v1/completions", json=body) as resp:
            assert (await resp.json())["usage"]["completion_tokens"] == 50
        assert sim.state.runner.cap.sent == 2


def test_first_and_last_only_wakes_a_writer_twice_on_virtual_time() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        engine = Engine(PROFILES["h100-llama3-8b"], start=loop.time())
        runner = EngineRunner(
            engine, speed=1.0, stream_interval=FIRST_AND_LAST_ONLY, clock=loop.time
        )
        runner.start()
        handle = runner.submit(10, 30, ignore_eos=True)
        wakes = 0
        while not handle.complete:
            await handle.event.wait()
            handle.event.clear()
            wakes += 1
        await runner.stop()
        return wakes, handle.released

    assert run_virtual(main()) == (2, 30)


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
