"""The KV-cache planner against hand-computed numbers and a real config.json."""

import json
from pathlib import Path

import pytest

from proxy.capacity.mistakes import budget_mistakes, classic_mistakes
from proxy.capacity.plan import GIB, Budget, ModelMemory
from proxy.capacity.plan import make_plan as plan_for
from proxy.capacity.vllm_metrics import parse_cache_config
from proxy.cli import main
from proxy.llm.models import PRESETS, ModelSpec

FIXTURE = Path(__file__).parents[1] / "fixtures" / "llama-3.1-8b-config.json"
LLAMA_8B = ModelMemory.of(PRESETS["llama-3.1-8b"])


def test_llama_3_1_8b_bf16_costs_128_kib_of_kv_per_token() -> None:
    # 2 (K, V) x 32 layers x 8 KV heads x 128 head_dim x 2 bytes
    assert LLAMA_8B.kv_bytes_per_token == 131_072


def test_config_json_gives_the_same_model_as_the_preset() -> None:
    from_file = ModelMemory.of(ModelSpec.from_hf_config(FIXTURE))
    assert from_file.kv_bytes_per_token == 131_072
    assert from_file.weight_bytes == LLAMA_8B.weight_bytes == 2 * 8_030_261_248


def test_budget_is_utilization_minus_weights_minus_overhead() -> None:
    plan = plan_for(LLAMA_8B, 8192, 1024, Budget(80, 0.9, 1.5))
    expected = int(80 * GIB * 0.9 - 16_060_522_496 - 1.5 * GIB)
    assert plan.kv_budget_bytes == expected
    assert plan.block_bytes == 16 * 131_072
    assert plan.num_blocks == expected // (16 * 131_072) == 28_437
    assert plan.tokens == 28_437 * 16


def test_sequences_at_full_and_average_length() -> None:
    plan = plan_for(LLAMA_8B, 8192, 1000, Budget(80, 0.9, 1.5))
    assert plan.seqs_at_max_len == 28_437 // 512  # 8192 tokens = 512 blocks
    assert plan.seqs_at_avg_len == 28_437 // 63  # 1000 tokens need 63 blocks
    assert plan.paged_waste_tokens_per_seq == 8  # 63 x 16 - 1000, less than a block
    assert plan.preallocated_seqs == 28_437 * 16 // 8192
    assert plan.preallocated_waste_tokens_per_seq == 7192


def test_recommended_limit_is_capped_by_max_num_seqs() -> None:
    uncapped = plan_for(LLAMA_8B, 8192, 1024, Budget(80))
    capped = plan_for(LLAMA_8B, 8192, 1024, Budget(80), max_num_seqs=256)
    assert uncapped.recommended_max_limit == uncapped.seqs_at_avg_len > 256
    assert uncapped.limited_by == "kv_cache"
    assert (capped.recommended_max_limit, capped.limited_by) == (256, "max_num_seqs")


def test_measured_blocks_replace_the_estimate() -> None:
    plan = plan_for(LLAMA_8B, 4096, 512, num_blocks=1000, block_size=16)
    assert plan.source == "vllm_metrics"
    assert plan.tokens == 16_000 and plan.seqs_at_avg_len == 1000 // 32


def test_weights_that_do_not_fit_are_an_error() -> None:
    with pytest.raises(ValueError, match="no room"):
        plan_for(ModelMemory.of(PRESETS["llama-3.1-70b"]), 8192, 1024, Budget(80))


def test_classic_mistakes_are_quantified_for_gqa_models() -> None:
    factors = {m.what.split(" (")[0]: m.tokens_factor for m in classic_mistakes(LLAMA_8B)}
    assert factors["forgetting the factor 2 for K and V"] == 2.0
    assert factors["using num_attention_heads"] == 0.25
    budget = {m.what.split(" (")[0]: m.tokens_factor for m in budget_mistakes(LLAMA_8B, Budget(80))}
    assert budget["not subtracting the weights"] > 1.2
    assert 0.9 < budget["taking GB as 10^9 bytes where the GPU reports GiB"] < 0.95


def test_cache_config_info_is_read_from_vllm_metrics() -> None:
    text = (
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
        "# TYPE vllm:cache_config_info gauge\n"
        'vllm:cache_config_info{block_size="16",cache_dtype="auto",'
        'gpu_memory_utilization="0.9",num_gpu_blocks="2048"} 1.0\n'
    )
    config = parse_cache_config(text)
    assert (config.block_size, config.num_gpu_blocks) == (16, 2048)


def test_unprofiled_cache_config_is_an_error() -> None:
    text = 'vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1.0\n'
    with pytest.raises(ValueError, match="num_gpu_blocks"):
        parse_cache_config(text)


def test_cli_prints_json_for_a_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["capacity", "--hf-config", str(FIXTURE), "--gpu-memory-gb", "80", "--json",
            "--max-model-len", "8192", "--avg-len", "1024", "--max-num-seqs", "256"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv_bytes_per_token"] == 131_072
    assert data["num_blocks"] == 28_437
    assert data["recommended_max_limit"] == 256


def test_cli_explicit_shape_matches_the_preset(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["capacity", "--layers", "32", "--kv-heads", "8", "--attention-heads", "32",
            "--head-dim", "128", "--dtype-bytes", "bf16", "--params", "8030261248",
            "--gpu-memory-gb", "80", "--json"]  # fmt: skip
    assert main(argv) == 0
    explicit = json.loads(capsys.readouterr().out)
    assert main(["capacity", "--model", "llama-3.1-8b", "--gpu-memory-gb", "80", "--json"]) == 0
    preset = json.loads(capsys.readouterr().out)
    assert explicit["num_blocks"] == preset["num_blocks"]


def test_cli_text_names_the_corrections(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "--model", "llama-3.1-8b", "--gpu-memory-gb", "80"]) == 0
    out = capsys.readouterr().out
    assert "131,072 B" in out and "--max-limit" in out
    assert "num_key_value_heads" in out and "factor 2" in out


def test_cli_without_a_budget_assumes_hardware_and_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Once "give --gpu-memory-gb" (exit 2); now the lab's machine is assumed and named.
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert main(["capacity", "--model", "llama-3.1-8b"]) == 0
    captured = capsys.readouterr()
    assert "assumed DGX Spark" in captured.out and "--max-limit" in captured.out
    assert captured.err == ""
