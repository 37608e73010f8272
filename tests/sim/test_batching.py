"""Static batching in the pure engine, on the engine's own clock; continuous stays the default."""

from dataclasses import replace

import aiohttp
import pytest

from proxy.sim import running_sim
from proxy.sim.batching import StaticBatching
from proxy.sim.engine import Engine, SeqState
from proxy.sim.profiles import PROFILES

H100 = PROFILES["h100-llama3-8b"]
MODEL = H100.served_model_name


def static(batch_size: int = 4, timeout: float = 10.0) -> Engine:
    return Engine(H100, batching=StaticBatching(batch_size, timeout))


def test_a_static_batch_waits_until_it_is_full() -> None:
    engine = static(batch_size=4)
    seqs = [engine.add(32, 5, ignore_eos=True) for _ in range(3)]
    assert engine.step().scheduled == 0
    assert all(s.state is SeqState.WAITING for s in seqs)
    seqs.append(engine.add(32, 5, ignore_eos=True))
    assert engine.step().scheduled == 4


def test_a_static_batch_starts_when_the_oldest_request_timed_out() -> None:
    engine = static(batch_size=4, timeout=0.5)
    engine.add(32, 5, ignore_eos=True, arrival=0.0)
    engine.add(32, 5, ignore_eos=True, arrival=0.2)
    assert engine.launch_at == 0.5
    engine.now = 0.49
    assert engine.step().scheduled == 0
    engine.now = 0.5
    assert engine.step().scheduled == 2


def test_a_static_batch_admits_nothing_until_its_longest_sequence_finishes() -> None:
    engine = static(batch_size=2)
    short = engine.add(32, 2, ignore_eos=True)
    long = engine.add(32, 10, ignore_eos=True)
    engine.step()
    engine.step()
    assert short.state is SeqState.FINISHED
    late = [engine.add(32, 5, ignore_eos=True) for _ in range(2)]
    while long.state is not SeqState.FINISHED:
        result = engine.step()
        assert result.scheduled == 1  # the freed slot stays empty
        assert all(s.state is SeqState.WAITING for s in late)
    assert engine.step().scheduled == 2  # a full batch was waiting: it starts at once
    assert engine.stats.batches == 2


def test_a_batch_larger_than_the_queue_takes_the_oldest_first() -> None:
    engine = static(batch_size=2, timeout=0.0)
    first, second, third = (engine.add(32, 3, ignore_eos=True) for _ in range(3))
    engine.step()
    assert [first.state, second.state, third.state] == [
        SeqState.RUNNING,
        SeqState.RUNNING,
        SeqState.WAITING,
    ]


def test_continuous_batching_refills_a_freed_slot_at_the_next_step() -> None:
    engine = Engine(replace(H100, max_num_seqs=2))
    short = engine.add(32, 2, ignore_eos=True)
    engine.add(32, 10, ignore_eos=True)
    engine.step()
    engine.step()
    assert short.state is SeqState.FINISHED
    late = engine.add(32, 5, ignore_eos=True)
    engine.step()
    assert late.state is SeqState.RUNNING


def test_a_batch_size_above_max_num_seqs_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_num_seqs"):
        Engine(replace(H100, max_num_seqs=8), batching=StaticBatching(batch_size=16))


async def test_the_simulator_serves_a_static_batch_after_its_timeout() -> None:
    body = {"model": MODEL, "prompt": "go", "max_tokens": 8, "ignore_eos": True}
    batching = StaticBatching(batch_size=8, timeout=0.5)  # 10 ms of wall time at speed 50
    async with running_sim(speed=50, batching=batching) as sim, aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(f"{sim.url}/v1/completions", json=body) as resp:
                assert (await resp.json())["usage"]["completion_tokens"] == 8
        async with http.get(f"{sim.url}/sim/state") as resp:
            state = await resp.json()
    assert state["batches"] == 2
    assert state["batching"].startswith("static")
    ttft_sum = sim.engine.stats.ttft.sum
    assert ttft_sum >= 2 * 0.5  # each request waited out the timeout (simulated seconds)
