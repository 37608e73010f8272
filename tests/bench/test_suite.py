"""The benchmark suite's pieces on tiny sizes: every figure the report promises is
produced and written. Nothing here asserts a speed; `make bench` measures those."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import aiohttp
import pytest

from proxy.bench import suite
from proxy.server.app import running_proxy
from proxy.server.sse import SseRelay
from proxy.settings import Settings
from proxy.sim.app import running_sim

TINY = suite.SuiteConfig(
    levels=(1, 2),
    requests=4,
    max_tokens=8,
    speed=20.0,
    probes=2,
    probe_tokens=4,
    idle_seconds=0.05,
    max_time=60.0,
    rounds=2,
    repeats=2,
    micro_scale=0.005,
)


async def _measure_in_process() -> suite.LoadResult:
    async with running_sim("h100-llama3-8b", speed=TINY.speed, seed=1) as sim:
        settings = Settings(
            _env_file=None,
            upstream=sim.url,
            port=0,
            admin_port=0,
            algorithm="fixed",
            initial_limit=1024,
            max_limit=1024,
            queue_size=0,
        )
        async with running_proxy(settings) as proxy:
            pids = {role: os.getpid() for role in suite.ROLES}
            targets = suite.Targets(sim.url, proxy.url, proxy.admin_url, pids)
            return await suite.measure(targets, TINY)


@pytest.fixture(scope="module")
def load() -> Iterator[suite.LoadResult]:
    # Sync and module-scoped: one tiny load run shared by the tests that read it.
    yield asyncio.run(_measure_in_process())


@pytest.fixture(scope="module")
def result(load: suite.LoadResult) -> suite.SuiteResult:
    micro = suite.micro_benchmarks(TINY.repeats, TINY.micro_scale)
    return suite.SuiteResult(TINY, suite.machine_info(), load, micro, 1.0, "make bench")


def test_overhead_row_per_level_has_every_figure(load: suite.LoadResult) -> None:
    assert [row.level for row in load.overhead] == [1, 2]
    for row in load.overhead:
        values = {f.name: getattr(row, f.name) for f in fields(row)}
        assert None not in values.values(), values
        assert (row.rounds, row.requests, row.failed_direct, row.failed_proxied) == (2, 8, 0, 0)
        assert row.ttft_p50_added_min is not None and row.ttft_p50_added_max is not None
        assert row.ttft_p50_added_min <= (row.ttft_p50_added_ms or 0) <= row.ttft_p50_added_max


def test_rounds_alternate_which_endpoint_goes_first(load: suite.LoadResult) -> None:
    firsts = [sweep.levels[0].endpoint for sweep in load.sweeps]
    assert firsts == ["direct", "proxied"]
    assert [len(rows) for rows in load.rounds] == [2, 2]


def test_median_row_takes_the_middle_round() -> None:
    def row(added: float) -> suite.OverheadRow:
        return suite.OverheadRow(8, 1, 10, 0, 1, *(added / 1000,) * 4, added, added, 1, 1, 2, 0.5)

    (merged,) = suite.median_rows([[row(1.0)], [row(50.0)], [row(3.0)]])
    assert merged.ttft_p50_added_ms == 3.0
    assert (merged.ttft_p50_added_min, merged.ttft_p50_added_max) == (1.0, 50.0)
    assert (merged.rounds, merged.requests, merged.failed_proxied) == (3, 30, 3)


def test_probes_time_both_endpoints(load: suite.LoadResult) -> None:
    assert [p.name for p in load.probes] == ["chat, not streamed, 4 tokens", "GET /v1/models"]
    for probe in load.probes:
        assert probe.failures == 0
        assert probe.direct is not None and probe.proxied is not None
        assert probe.added_p50_ms is not None and probe.e2e_p50_ratio is not None


def test_process_usage_counts_the_requests_each_role_handled(load: suite.LoadResult) -> None:
    handled = {usage.role: usage.requests for usage in load.processes}
    # Per endpoint: probes 2 kinds x 2, then 2 rounds of a warm-up burst of the top
    # level (2) and the sweep's 2 levels x 4.
    assert handled == {"proxy": 4 + 2 * (2 + 8), "simulator": 2 * 24, "load generator": 2 * 24}
    for usage in load.processes:
        assert usage.cpu_seconds >= 0 and usage.cpu_per_1k is not None
        assert usage.after.rss_bytes > 0 and usage.after.hwm_bytes >= usage.after.rss_bytes


def test_overhead_histogram_is_scraped_from_the_admin_port(load: suite.LoadResult) -> None:
    metric = load.overhead_metric
    # Warm-up (2), probes (4), and per round: burst (2), the sweep's model lookup (1)
    # and its requests (8).
    assert metric["count"] == 2 + 4 + 2 * (2 + 1 + 8)
    assert {"sum_seconds", "mean_seconds", "share_le_0_1ms"} <= metric.keys()


def test_micro_benchmarks_report_medians_and_ratio_ranges(result: suite.SuiteResult) -> None:
    names = [m.name for m in result.micro]
    assert len(names) == len(set(names)) == 5
    for micro in result.micro:
        assert micro.repeats == 2 and micro.ops >= 1
        assert micro.target_ns > 0 and micro.baseline_ns > 0
        assert micro.ratio_min <= micro.ratio <= micro.ratio_max


def test_benchmark_stream_is_what_the_relay_expects() -> None:
    relay = SseRelay(strip_usage=True)
    stream = suite.sse_stream(tokens=5)
    out = b"".join(relay.feed(data)[0] for data in stream) + relay.flush()
    assert relay.content_seen
    assert relay.usage == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert out.endswith(b"data: [DONE]\n\n") and b'"usage"' not in out


def test_outputs_are_json_markdown_and_png(result: suite.SuiteResult, tmp_path: Path) -> None:
    written = suite.write_outputs(result, tmp_path)
    assert {path.name for path in written} == {"bench.json", "bench.md", "bench.png", "sweep.png"}
    data = json.loads((tmp_path / "bench.json").read_text())
    expected = {"overhead", "rounds", "sweeps", "probes", "processes", "micro", "machine"}
    assert expected <= set(data)
    assert data["overhead"][0]["ttft_p50_added_ms"] is not None
    markdown = (tmp_path / "bench.md").read_text()
    for heading in ("Proxy overhead", "Non-streamed probes", "CPU and memory", "micro-bench"):
        assert heading in markdown


def test_read_proc_reads_cpu_and_memory_of_a_process() -> None:
    sample = suite.read_proc(os.getpid())
    assert sample.cpu_seconds > 0
    assert 0 < sample.rss_bytes <= sample.hwm_bytes


async def test_service_runs_a_subprocess_until_the_block_ends(tmp_path: Path) -> None:
    args = ["sim", "--port", "0", "--speed", "50"]
    ready = r"listening on (http://\S+)"
    async with suite.service("simulator", args, ready, str(tmp_path)) as (pid, match):
        async with aiohttp.ClientSession() as session, session.get(f"{match[1]}/v1/models") as r:
            assert r.status == 200
        assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


async def test_service_that_exits_early_raises_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(suite.ServiceError, match="simulator did not start"):
        async with suite.service("simulator", ["sim", "--speed", "-1"], "never", str(tmp_path)):
            pass


def test_invalid_options_exit_2_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    suite.configure(parser)
    args = parser.parse_args(["--requests", "0", "--out", "unused"])
    assert suite.run(args) == 2
    assert "requests must be at least 1" in capsys.readouterr().err


def test_default_options_are_the_suite_defaults() -> None:
    parser = argparse.ArgumentParser()
    suite.configure(parser)
    args = parser.parse_args([])
    assert suite._config(args) == suite.SuiteConfig()
    assert args.out == Path("out/bench")


def _notes_with_others(cores: float) -> list[str]:
    row = suite.OverheadRow(8, 1, 10, 0, 0, *(0.01,) * 4, 1.0, 1.0, 1.0, 1.0, 2.0, cores)
    load = suite.LoadResult([], [[row]], [row], [], [], {}, None)
    return suite._notes(suite.SuiteConfig(rounds=1), load)


def test_contended_machine_is_noted_in_the_report() -> None:
    notes = _notes_with_others((os.cpu_count() or 1) / 2)
    assert any("other tenants kept up to" in note for note in notes)


def test_quiet_machine_gets_no_contention_note() -> None:
    assert not any("other tenants" in note for note in _notes_with_others(0.0))
