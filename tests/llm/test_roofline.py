"""The roofline model and its calibration against measured H100 decode steps."""

import pytest

from proxy.llm.models import PRESETS
from proxy.llm.roofline import Hardware, Roofline
from proxy.sim.profiles import PROFILES

# REAL-COMPONENTS.md: Llama-3.1-8B shapes on an H100 80GB HBM3, one decode step, ms.
H100_DECODE_MS = {
    (1, 512): 6.01, (8, 512): 6.15, (32, 512): 6.57, (64, 512): 7.43,
    (128, 512): 9.42, (256, 512): 12.92,
    (1, 2048): 6.04, (8, 2048): 6.76, (32, 2048): 8.63, (64, 2048): 11.56,
    (128, 2048): 17.71,
}  # fmt: skip
H100_PREFILL_TOKENS_PER_S = {512: 43_000, 2048: 48_000, 8192: 43_000}


def h100() -> Roofline:
    return PROFILES["h100-llama3-8b"].roofline


@pytest.mark.parametrize(("shape", "measured_ms"), sorted(H100_DECODE_MS.items()))
def test_h100_decode_step_within_20_percent_of_measurement(
    shape: tuple[int, int], measured_ms: float
) -> None:
    batch, context = shape
    predicted_ms = h100().decode_step_time(batch, context) * 1e3
    assert predicted_ms == pytest.approx(measured_ms, rel=0.2)


@pytest.mark.parametrize(("tokens", "measured"), sorted(H100_PREFILL_TOKENS_PER_S.items()))
def test_h100_prefill_rate_within_20_percent_of_measurement(tokens: int, measured: int) -> None:
    assert tokens / h100().prefill_time(tokens) == pytest.approx(measured, rel=0.2)


def test_decode_step_rises_with_batch_times_context() -> None:
    r = h100()
    assert r.decode_step_time(128, 2048) > r.decode_step_time(128, 512) > r.decode_step_time(1, 512)


def test_small_decode_batch_is_memory_bound_and_big_prefill_compute_bound() -> None:
    r = h100()
    assert r.step_cost(decode_seqs=1, decode_context=512).memory_bound
    big_prefill = r.step_cost(decode_seqs=0, decode_context=0, prefill_tokens=8192, prefill_seqs=1)
    assert not big_prefill.memory_bound


def test_idle_step_costs_nothing() -> None:
    assert h100().step_cost(decode_seqs=0, decode_context=0).overhead == 0.0


def test_kv_blocks_follow_memory_left_after_weights() -> None:
    model = PRESETS["llama-3.1-8b"]
    hw = Hardware("x", memory_bytes=model.weight_bytes + 16 * model.kv_bytes_per_token * 10,
                  memory_bandwidth=1e12, peak_flops=1e15)  # fmt: skip
    assert Roofline(model, hw).num_kv_blocks(16, gpu_memory_utilization=1.0) == 10


@pytest.mark.parametrize(
    "kwargs",
    [{"memory_bandwidth": 0}, {"bandwidth_efficiency": 1.5}, {"step_overhead": -1.0}],
)
def test_hardware_rejects_nonsense(kwargs: dict[str, float]) -> None:
    base: dict[str, float] = {"memory_bytes": 1e9, "memory_bandwidth": 1e9, "peak_flops": 1e12}
    with pytest.raises(ValueError):
        Hardware("bad", **{**base, **kwargs})
