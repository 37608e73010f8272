"""The sweep machinery against the SSE stub (the simulator-backed sweep is in
test_sweep_sim.py)."""

import pytest

from proxy.bench.sweep import BenchError, Endpoint, SweepConfig, run_sweep
from proxy.load.prompts import OutputLength
from tests.helpers.stub import StubState, running_stub


def config(*urls: str, **overrides: object) -> SweepConfig:
    names = ("a", "b")
    base: dict[str, object] = {
        "endpoints": tuple(Endpoint(n, u) for n, u in zip(names, urls, strict=False)),
        "levels": (1, 4),
        "requests": 8,
        "output_len": OutputLength(4),
    }
    base.update(overrides)
    return SweepConfig(**base)  # type: ignore[arg-type]


async def test_open_loop_sends_the_requested_number_per_rate() -> None:
    async with running_stub() as (url, state):
        result = await run_sweep(config(url, mode="rate", levels=(50.0, 100.0), requests=6))
    assert [s.requests for s in result.levels] == [6, 6]
    assert len(state.bodies) == 12
    assert all(s.mode == "rate" for s in result.levels)


async def test_duration_mode_stops_each_level_by_itself() -> None:
    async with running_stub() as (url, _):
        result = await run_sweep(config(url, levels=(2,), requests=None, duration=0.2))
    (stats,) = result.levels
    assert stats.ok > 0 and stats.failed == 0 and not result.truncated


async def test_compare_gives_both_endpoints_the_same_workload_interleaved() -> None:
    async with running_stub() as (url_a, a), running_stub() as (url_b, b):
        cfg = config(url_a, url_b, output_len=OutputLength(6, sigma=0.8, cap=20), levels=(1, 2, 4))
        result = await run_sweep(cfg)

    def workload(bodies: list[dict[str, object]]) -> list[tuple[object, object]]:
        return sorted((str(x["messages"]), x["max_tokens"]) for x in bodies)

    assert workload(a.bodies) == workload(b.bodies)
    assert [(s.endpoint, s.level) for s in result.levels] == [
        ("a", 1),
        ("b", 1),
        ("b", 2),
        ("a", 2),
        ("a", 4),
        ("b", 4),
    ]
    ratios = result.ratios()
    assert [r["level"] for r in ratios] == [1, 2, 4]
    assert all(r["req_per_s"] is not None and r["req_per_s"] > 0 for r in ratios)


async def test_total_time_cap_cuts_in_flight_requests_and_stops() -> None:
    async with running_stub(StubState(step=0.05)) as (url, _):
        cfg = config(
            url, levels=(2, 4), requests=100, output_len=OutputLength(50), max_total_seconds=0.3
        )
        result = await run_sweep(cfg)
    assert result.truncated
    assert len(result.levels) == 1 and result.levels[0].cancelled == 2
    assert result.levels[0].failed == 0


async def test_unreachable_endpoint_is_one_clear_error() -> None:
    async with running_stub() as (url, _):
        pass
    with pytest.raises(BenchError, match="cannot list models"):
        await run_sweep(config(url))


def test_config_rejects_fractional_repeated_levels_and_both_amounts() -> None:
    with pytest.raises(ValueError):
        config("http://x", levels=(1.5,))
    with pytest.raises(ValueError):
        config("http://x", levels=(2, 2))
    with pytest.raises(ValueError):
        config("http://x", requests=5, duration=1.0)


def test_automatic_request_count_scales_with_the_level() -> None:
    cfg = config("http://x", requests=None)
    assert cfg.requests_for(1) == 32 and cfg.requests_for(64) == 256
