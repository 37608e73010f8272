"""`capacity` with no flags but the model, and the lab's exercise 2 as one table:
the numbers checked against the KV formula worked out by hand."""

import json
import math
from pathlib import Path

import pytest

from proxy.capacity.cli import run
from proxy.capacity.plan import Budget, ModelMemory, make_plans
from proxy.cli import build_parser, main
from proxy.llm.models import PRESETS
from tests.helpers.nvidia_smi import fake_binary, replay

LLAMA_8B = ModelMemory.of(PRESETS["llama-3.1-8b"])
LENGTHS = "2048,4096,8192,16384"

# By hand, for Llama-3.1-8B in bf16 on the assumed DGX Spark (121.7 GiB x 0.7):
KV_PER_TOKEN = 32 * 8 * 128 * 2 * 2  # layers x KV heads x head_dim x (K,V) x bytes = 131,072
WEIGHTS = 8_030_261_248 * 2  # parameters x bf16 bytes
SPARK_KV = math.floor(121.7 * 2**30 * 0.7 - WEIGHTS - 1.5 * 2**30)  # 68.73 GiB
SPARK_BLOCKS = SPARK_KV // (16 * KV_PER_TOKEN)  # blocks of 16 tokens, 2 MiB each


def capacity(argv: list[str], capsys: pytest.CaptureFixture[str], nvidia_smi: str) -> str:
    args = build_parser("capacity").parse_args(["capacity", *argv])
    assert run(args, replay(nvidia_smi)) == 0
    return capsys.readouterr().out


def no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run: as on this machine


def test_hand_computed_figures() -> None:
    assert KV_PER_TOKEN == 131_072
    assert SPARK_BLOCKS == 35_191  # = 563,056 tokens


def test_each_length_gets_pre_allocated_and_paged_counts() -> None:
    plans = make_plans(LLAMA_8B, (2048, 4096, 8192, 16384), 1024, Budget(121.7, 0.7))
    tokens = SPARK_BLOCKS * 16
    assert [p.preallocated_seqs for p in plans] == [tokens // n for n in (2048, 4096, 8192, 16384)]
    assert [p.preallocated_seqs for p in plans] == [274, 137, 68, 34]
    # Paged, a 1,024-token sequence takes 64 blocks whatever max_model_len allows.
    assert {p.seqs_at_avg_len for p in plans} == {SPARK_BLOCKS // 64} == {549}
    assert [p.recommended_max_limit for p in plans] == [549] * 4


def test_typical_length_is_capped_at_a_shorter_max_model_len() -> None:
    (short, long) = make_plans(LLAMA_8B, (512, 4096), 1024, Budget(121.7, 0.7))
    assert (short.avg_len, long.avg_len) == (512, 1024)
    assert short.seqs_at_avg_len == SPARK_BLOCKS // 32


def test_a_length_that_does_not_fit_once_is_marked() -> None:
    (plan,) = make_plans(LLAMA_8B, (131_072,), 1024, num_blocks=4096)  # 65,536 tokens
    assert not plan.fits


def test_model_alone_answers_on_a_machine_without_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_gpu(tmp_path, monkeypatch)
    assert main(["capacity", "--model", "llama-3.1-8b"]) == 0
    out = capsys.readouterr().out
    assert "assumed DGX Spark (GB10): 128 GB unified memory" in out
    assert "no nvidia-smi on PATH" in out
    assert "= 131,072 B (128 KiB)" in out
    assert f"{SPARK_BLOCKS:,} x 16 tokens" in out
    assert "--max-limit 549" in out


def test_failing_nvidia_smi_falls_back_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_binary(tmp_path, "echo 'NVIDIA-SMI has failed'\nexit 9\n", monkeypatch)
    assert main(["capacity", "--model", "llama-3.1-8b"]) == 0
    out = capsys.readouterr().out
    assert "nvidia-smi failed (exit 9): NVIDIA-SMI has failed" in out
    assert "assumed DGX Spark" in out


def test_lengths_table_has_one_row_per_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_gpu(tmp_path, monkeypatch)
    assert main(["capacity", "--model", "llama-3.1-8b", "--max-model-len", LENGTHS]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert rows == [
        ["2,048", "274", "549", "2.0x", "549"],
        ["4,096", "137", "549", "4.0x", "549"],
        ["8,192", "68", "549", "8.1x", "549"],
        ["16,384", "34", "549", "16.1x", "549"],
    ]


def test_lengths_table_marks_the_max_num_seqs_cap(capsys: pytest.CaptureFixture[str]) -> None:
    out = capacity(["--model", "llama-3.1-8b", "--max-model-len", LENGTHS, "--max-num-seqs", "256"],
                   capsys, "h100.txt")  # fmt: skip
    assert "256*" in out and "capped by --max-num-seqs" in out


def test_prompt_and_output_lengths_make_the_typical_sequence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = capacity(["--model", "llama-3.1-8b", "--prompt-len", "1500", "--output-len", "548",
                    "--max-model-len", LENGTHS, "--json"], capsys, "gb10.txt")  # fmt: skip
    data = json.loads(out)
    assert data["typical_len"] == {"tokens": 2048, "source": "given: 1,500 prompt + 548 output"}
    assert [p["seqs_at_avg_len"] for p in data["plans"]] == [SPARK_BLOCKS // 128] * 4


def test_avg_len_and_prompt_len_together_are_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser("capacity").parse_args(
        ["capacity", "--model", "llama-3.1-8b", "--avg-len", "900", "--prompt-len", "100"]
    )
    assert run(args, replay("h100.txt")) == 2
    assert "not both" in capsys.readouterr().err


def test_a_gpu_read_by_nvidia_smi_is_planned_for(capsys: pytest.CaptureFixture[str]) -> None:
    out = capacity(["--model", "llama-3.1-8b", "--json"], capsys, "h100.txt")
    data = json.loads(out)
    assert data["hardware"]["source"] == "nvidia-smi"
    assert data["budget"]["gpu_memory_gib"] == 81559 / 1024
    expected = math.floor(81559 / 1024 * 2**30 * 0.9 - WEIGHTS - 1.5 * 2**30) // (16 * KV_PER_TOKEN)
    assert data["num_blocks"] == expected == 28_275


def test_several_gpus_are_listed_and_the_chosen_one_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = capacity(
        ["--model", "llama-3.1-8b", "--gpu-index", "1"], capsys, "h100x2-second-busy.txt"
    )
    listed = [line for line in out.splitlines() if "NVIDIA H100 80GB HBM3, 79.65 GiB" in line]
    assert len(listed) == 2 and listed[1].endswith("<- planned for")
    assert "vLLM refuses to start" in out


def test_bad_length_list_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("capacity").parse_args(["capacity", "--max-model-len", "2048,0"])
    assert "positive" in capsys.readouterr().err


def test_measured_blocks_need_no_hardware(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics"
    metrics.write_text('vllm:cache_config_info{block_size="16",num_gpu_blocks="2048"} 1.0\n')
    args = build_parser("capacity").parse_args(
        ["capacity", "--model", "llama-3.1-8b", "--metrics-url", metrics.as_uri(), "--json"]
    )

    def no_nvidia_smi(argv: object) -> str:
        raise AssertionError("vLLM's own block count needs no GPU reading")

    assert run(args, no_nvidia_smi) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["hardware"], data["num_blocks"], data["source"]) == (None, 2048, "vllm_metrics")
