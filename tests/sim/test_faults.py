"""Fault injection through /sim/faults: each fault, validation, and clearing."""

import asyncio

import aiohttp
import pytest

from proxy.sim import SimHandle
from proxy.sim.profiles import PROFILES
from tests.helpers.polling import eventually

MODEL = PROFILES["h100-llama3-8b"].served_model_name
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


async def set_faults(http: aiohttp.ClientSession, sim: SimHandle, **fields: object) -> None:
    async with http.post(f"{sim.url}/sim/faults", json=fields) as resp:
        assert resp.status == 200, await resp.text()


async def test_error_rate_answers_with_the_given_status(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    await set_faults(http, sim, error_rate=1.0, error_status=503)
    async with http.post(f"{sim.url}/v1/chat/completions", json=CHAT) as resp:
        assert resp.status == 503
        error = (await resp.json())["error"]
    assert error["code"] == 503 and error["message"]
    assert sim.engine.stats.generation_tokens == 0


async def test_partial_error_rate_fails_only_some_requests(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    await set_faults(http, sim, error_rate=0.5, error_status=500)
    statuses = []
    for _ in range(40):
        body = {**CHAT, "max_tokens": 1}
        async with http.post(f"{sim.url}/v1/chat/completions", json=body) as resp:
            statuses.append(resp.status)
    assert set(statuses) == {200, 500}
    assert 10 <= statuses.count(500) <= 30  # seeded draws, so this is deterministic


async def test_slowdown_multiplies_engine_step_time(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    await set_faults(http, sim, slowdown=3.0)
    assert sim.engine.slowdown == 3.0
    async with http.delete(f"{sim.url}/sim/faults") as resp:
        assert resp.status == 200
    assert sim.engine.slowdown == 1.0


async def test_hang_accepts_and_never_answers(sim: SimHandle, http: aiohttp.ClientSession) -> None:
    await set_faults(http, sim, hang=True)
    with pytest.raises(asyncio.TimeoutError):
        timeout = aiohttp.ClientTimeout(total=0.3)
        async with http.post(f"{sim.url}/v1/chat/completions", json=CHAT, timeout=timeout):
            pass
    async with http.get(f"{sim.url}/metrics") as resp:
        assert resp.status == 200  # control routes stay up
    async with http.delete(f"{sim.url}/sim/faults"):
        pass
    async with http.post(f"{sim.url}/v1/chat/completions", json=CHAT) as resp:
        assert resp.status == 200


async def test_cut_after_chunks_ends_the_stream_without_done(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    await set_faults(http, sim, cut_after_chunks=2)
    body = {**CHAT, "max_tokens": 2000, "stream": True, "ignore_eos": True}
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{sim.url}/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
            async for data in resp.content.iter_any():
                received += data
    assert received.count(b"data: ") == 2 and b"[DONE]" not in received
    await eventually(lambda: sim.engine.num_running == 0 and sim.engine.blocks.used == 0)


async def test_refuse_closes_the_connection_without_an_answer(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    await set_faults(http, sim, refuse=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.post(f"{sim.url}/v1/chat/completions", json=CHAT):
            pass


async def test_faults_are_shown_and_cleared(sim: SimHandle, http: aiohttp.ClientSession) -> None:
    await set_faults(http, sim, slowdown=2.0)
    await set_faults(http, sim, error_rate=0.1)  # a POST keeps fields it does not name
    async with http.get(f"{sim.url}/sim/faults") as resp:
        shown = await resp.json()
    assert (shown["slowdown"], shown["error_rate"]) == (2.0, 0.1)
    async with http.delete(f"{sim.url}/sim/faults") as resp:
        cleared = await resp.json()
    assert (cleared["slowdown"], cleared["error_rate"], cleared["hang"]) == (1.0, 0.0, False)


@pytest.mark.parametrize(
    "body",
    [
        b'{"error_rate": 1.5}',
        b'{"error_status": 200}',
        b'{"slowdown": 0}',
        b'{"hang": "yes"}',
        b'{"cut_after_chunks": -1}',
        b'{"explode": true}',
        b"[1, 2]",
        b"not json",
    ],
)
async def test_nonsense_faults_are_rejected_with_400(
    sim: SimHandle, http: aiohttp.ClientSession, body: bytes
) -> None:
    async with http.post(f"{sim.url}/sim/faults", data=body) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == 400
    assert sim.state.faults.error_rate == 0.0 and sim.state.faults.slowdown == 1.0
