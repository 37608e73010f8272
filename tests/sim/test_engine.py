"""The pure engine: continuous batching, paged KV, preemption, FIFO, throughput plateau."""

from dataclasses import replace

import pytest

from proxy.sim.engine import Engine, SeqState
from proxy.sim.profiles import PROFILES, Profile
from proxy.sim.sweep import run_level

H100 = PROFILES["h100-llama3-8b"]


def small(
    blocks: int = 1000, max_num_seqs: int = 64, budget: int = 2048, max_model_len: int = 256
) -> Profile:
    p = replace(
        H100, max_model_len=max_model_len, max_num_seqs=max_num_seqs, max_num_batched_tokens=budget
    )
    return p.with_blocks(blocks)


def run_to_completion(engine: Engine, max_steps: int = 100_000) -> int:
    steps = 0
    while engine.has_work and steps < max_steps:
        engine.step()
        steps += 1
    return steps


def test_each_running_sequence_gets_one_token_per_step() -> None:
    engine = Engine(small())
    seqs = [engine.add(32, 50, ignore_eos=True) for _ in range(3)]
    for step in range(1, 6):
        result = engine.step()
        assert result.emitted == seqs
        assert [s.output_tokens for s in seqs] == [step] * 3


def test_new_request_joins_at_the_next_step() -> None:
    engine = Engine(small())
    first = engine.add(32, 50, ignore_eos=True)
    engine.step()
    late = engine.add(32, 50, ignore_eos=True)
    assert late.state is SeqState.WAITING
    result = engine.step()
    assert late in result.emitted and late.output_tokens == 1
    assert first.output_tokens == 2


def test_finished_sequence_leaves_the_batch_at_once() -> None:
    engine = Engine(small())
    short = engine.add(32, 2, ignore_eos=True)
    engine.add(32, 50, ignore_eos=True)
    engine.step()
    engine.step()
    assert short.state is SeqState.FINISHED and short.output_tokens == 2
    assert short not in engine.running and short.num_blocks == 0
    assert engine.num_running == 1


def test_no_blocks_leak_after_completion() -> None:
    engine = Engine(small(blocks=200), seed=3)
    for i in range(40):
        engine.add(10 + 5 * i % 150, 64)
    run_to_completion(engine)
    assert engine.blocks.used == 0
    assert sum(engine.stats.finished.values()) == 40


def test_abort_frees_blocks_of_running_and_waiting_sequences() -> None:
    engine = Engine(small(max_num_seqs=1))
    running = engine.add(100, 50, ignore_eos=True)
    waiting = engine.add(100, 50, ignore_eos=True)
    engine.step()
    assert running.num_blocks > 0 and engine.waiting[0] is waiting
    engine.abort(running)
    engine.abort(waiting)
    assert engine.blocks.used == 0 and not engine.has_work
    assert running.state is waiting.state is SeqState.ABORTED


def test_preempts_the_newest_sequence_when_blocks_run_out() -> None:
    # 8 blocks = 128 tokens; two sequences growing to 48 + 80 tokens cannot both fit.
    engine = Engine(small(blocks=8, max_model_len=128))
    old = engine.add(48, 80, ignore_eos=True)
    new = engine.add(48, 80, ignore_eos=True)
    while engine.stats.preemptions == 0:
        engine.step()
    assert new.state is SeqState.WAITING and engine.waiting[0] is new
    assert new.num_blocks == 0 and new.computed == 0  # recompute, as vLLM V1
    assert old.state is SeqState.RUNNING
    run_to_completion(engine)
    assert old.output_tokens == new.output_tokens == 80
    assert engine.blocks.used == 0


def test_waiting_queue_is_fifo() -> None:
    engine = Engine(small(max_num_seqs=1))
    seqs = [engine.add(16, 3, ignore_eos=True) for _ in range(4)]
    run_to_completion(engine)
    starts = [s.first_token_at or 0.0 for s in seqs]
    assert starts == sorted(starts) and len(set(starts)) == 4


def test_running_sequences_are_capped_by_max_num_seqs() -> None:
    engine = Engine(small(max_num_seqs=4))
    for _ in range(10):
        engine.add(16, 20, ignore_eos=True)
    engine.step()
    assert (engine.num_running, engine.num_waiting) == (4, 6)


def test_prefill_is_chunked_by_the_token_budget() -> None:
    engine = Engine(small(budget=64))
    seq = engine.add(200, 5, ignore_eos=True)
    steps = 0
    while seq.output_tokens == 0:
        engine.step()
        steps += 1
    assert steps == 4  # ceil(200 / 64)


def test_ignore_eos_produces_exactly_max_tokens() -> None:
    engine = Engine(H100)
    seq = engine.add(100, 77, ignore_eos=True)
    run_to_completion(engine)
    assert (seq.output_tokens, seq.finish_reason) == (77, "length")


def test_without_ignore_eos_lengths_are_seeded_draws_capped_by_max_tokens() -> None:
    def lengths(seed: int) -> list[int]:
        engine = Engine(H100, seed=seed)
        return [engine.add(10, 300).target_tokens for _ in range(50)]

    assert lengths(7) == lengths(7)
    assert lengths(7) != lengths(8)
    assert max(lengths(7)) <= 300 and len(set(lengths(7))) > 10


def test_output_is_capped_by_max_model_len() -> None:
    engine = Engine(small(max_model_len=256))
    assert engine.add(250, None, ignore_eos=True).target_tokens == 6


def test_latency_histograms_record_simulated_time() -> None:
    engine = Engine(small())
    engine.add(32, 10, ignore_eos=True)
    run_to_completion(engine)
    stats = engine.stats
    assert (stats.ttft.count, stats.itl.count, stats.e2e.count) == (1, 9, 1)
    assert stats.e2e.sum == pytest.approx(engine.now)
    assert (stats.prompt_tokens, stats.generation_tokens) == (32, 10)


def test_slowdown_multiplies_step_time() -> None:
    normal, slow = Engine(small()), Engine(small())
    slow.slowdown = 3.0
    for engine in (normal, slow):
        engine.add(32, 10, ignore_eos=True)
    assert slow.step().duration == pytest.approx(3 * normal.step().duration)


def test_throughput_plateaus_while_step_time_rises() -> None:
    at64 = run_level(H100, 64, input_len=256, output_len=128, requests=128)
    at256 = run_level(H100, 256, input_len=256, output_len=128, requests=512)
    assert at256.mean_step > 1.5 * at64.mean_step
    assert at256.output_tok_per_s < 2.5 * at64.output_tok_per_s  # far from 4x
    assert at256.tpot_p50 > at64.tpot_p50


def test_rejects_prompts_that_do_not_fit_the_model() -> None:
    engine = Engine(small(max_model_len=256))
    with pytest.raises(ValueError):
        engine.add(256, 1)
