"""Static vs continuous batching, scaled down: behaviour, not timing (simulated time)."""

import json
import math
from pathlib import Path

import pytest

from proxy.bench.batching.compare import SATURATED, SweepConfig, run_cell
from proxy.bench.batching.simulate import simulate
from proxy.bench.batching.workload import Workload
from proxy.cli import main
from proxy.sim.batching import CONTINUOUS, StaticBatching
from proxy.sim.profiles import PROFILES

H100 = PROFILES["h100-llama3-8b"]


def config(requests: int = 300) -> SweepConfig:
    return SweepConfig(H100, Workload(requests=requests), batch_size=16)


def test_continuous_beats_static_on_throughput_with_lognormal_lengths_at_high_load() -> None:
    cell = run_cell(config(), sigma=0.8, load=SATURATED, batch_size=16)
    assert cell.ratio > 2.0
    assert cell.static.utilisation < cell.continuous.utilisation


def test_equal_output_lengths_make_the_modes_close() -> None:
    cell = run_cell(config(), sigma=0.0, load=SATURATED, batch_size=16)
    assert cell.ratio == pytest.approx(1.0, abs=0.1)


def test_below_static_capacity_both_modes_keep_up_with_the_offered_load() -> None:
    cell = run_cell(config(), sigma=0.8, load=0.1, batch_size=16)
    assert cell.ratio == pytest.approx(1.0, abs=0.15)
    # ... but static requests still wait for their batch and its longest sequence
    assert cell.static.pct("ttft", 90) > cell.continuous.pct("ttft", 90)


def test_every_request_completes_with_its_drawn_length_in_both_modes() -> None:
    jobs = Workload(requests=100, output_sigma=1.0).jobs()
    for batching in (CONTINUOUS, StaticBatching(8, 0.1)):
        result = simulate(H100, batching, jobs, slots=8)
        assert result.requests == 100
        assert result.output_tokens == sum(j.output_tokens for j in jobs)


def test_a_static_batch_never_uses_more_slots_than_it_has() -> None:
    jobs = Workload(requests=64, output_sigma=0.8).jobs()
    result = simulate(H100, StaticBatching(8, 0.1), jobs, slots=8)
    assert 0 < result.utilisation <= 1
    assert result.batches == 8


def test_workloads_that_differ_in_sigma_share_arrivals_and_prompts() -> None:
    a = Workload(requests=50, rate=5.0, output_sigma=0.0).jobs()
    b = Workload(requests=50, rate=5.0, output_sigma=1.0).jobs()
    assert [(j.at, j.prompt_tokens) for j in a] == [(j.at, j.prompt_tokens) for j in b]
    assert {j.output_tokens for j in a} == {128}
    assert len({j.output_tokens for j in b}) > 10


def test_the_batching_command_writes_the_table_json_and_png(tmp_path: Path) -> None:
    argv = ["batching", "--requests", "60", "--sigmas", "0,0.8", "--loads", "1,inf"]
    argv += ["--batch-size", "8", "--batch-sizes", "8", "--out", str(tmp_path)]
    assert main(argv) == 0
    table = (tmp_path / "batching.md").read_text()
    assert "| sigma | load 1 | load saturated |" in table
    data = json.loads((tmp_path / "batching.json").read_text())
    assert [c["sigma"] for c in data["grid"]] == [0.0, 0.0, 0.8, 0.8]
    assert data["grid"][1]["load"] is None and math.isfinite(data["grid"][3]["ratio"])
    assert (tmp_path / "batching.png").stat().st_size > 10_000


def test_the_batching_command_rejects_a_batch_above_max_num_seqs(tmp_path: Path) -> None:
    argv = ["batching", "--profile", "cpu-tiny", "--batch-sizes", "256", "--out", str(tmp_path)]
    assert main(argv) == 2
