"""Reading GPUs with nvidia-smi: its output parsed, and every way it can be missing.

The files in nvidia_smi/ are in the format of the query the planner runs; no GPU
exists on the test machines, so the failure paths run a real (fake) binary on PATH."""

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from proxy.capacity.gpu import QUERY, Gpu, parse_gpus, probe_gpus
from tests.helpers.nvidia_smi import OUTPUTS, fake_binary, replay


def test_query_asks_for_name_total_and_free_without_units() -> None:
    assert QUERY == (
        "nvidia-smi",
        "--query-gpu=name,memory.total,memory.free",
        "--format=csv,noheader,nounits",
    )


def test_one_gpu_is_read_in_mib() -> None:
    probe = probe_gpus(replay("h100.txt"))
    assert probe.problem is None
    assert probe.gpus == (Gpu(0, "NVIDIA H100 80GB HBM3", 81559.0, 81004.0),)


def test_several_gpus_are_numbered_in_nvidia_smi_order() -> None:
    gpus = probe_gpus(replay("h100x2-second-busy.txt")).gpus
    assert [(g.index, g.free_mib) for g in gpus] == [(0, 81004.0), (1, 2210.0)]


def test_unified_memory_reports_no_total() -> None:
    (gpu,) = probe_gpus(replay("gb10.txt")).gpus
    assert (gpu.name, gpu.total_mib, gpu.free_mib) == ("NVIDIA GB10", None, None)


def test_a_comma_in_the_name_is_kept() -> None:
    (gpu,) = parse_gpus("Some GPU, rev 2, 1024, 512\n")
    assert (gpu.name, gpu.total_mib) == ("Some GPU, rev 2", 1024.0)


def test_garbage_is_a_problem_not_a_crash() -> None:
    probe = probe_gpus(lambda argv: "No devices were found\n")
    assert probe.gpus == () and "unexpected nvidia-smi line" in (probe.problem or "")


def test_empty_output_lists_no_gpu() -> None:
    assert probe_gpus(lambda argv: "\n").problem == "nvidia-smi listed no GPU"


def test_absent_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no nvidia-smi anywhere
    probe = probe_gpus()
    assert probe.gpus == () and probe.problem == "no nvidia-smi on PATH"


def test_failing_binary_says_its_exit_code_and_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = (OUTPUTS / "no-driver.txt").read_text().strip()
    fake_binary(tmp_path, f'echo "{message}"\nexit 9\n', monkeypatch)
    probe = probe_gpus()
    assert probe.gpus == ()
    assert probe.problem == f"nvidia-smi failed (exit 9): {message}"


def test_working_binary_is_run_with_the_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args_file = tmp_path / "args"
    fake_binary(tmp_path, f'echo "$@" > {args_file}\ncat {OUTPUTS / "h100.txt"}\n', monkeypatch)
    assert probe_gpus().gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert args_file.read_text().split() == list(QUERY[1:])


def test_a_hanging_binary_is_given_up_on() -> None:
    def hangs(argv: Sequence[str]) -> str:
        raise subprocess.TimeoutExpired(list(argv), 10.0)

    assert "did not answer" in (probe_gpus(hangs).problem or "")


def test_a_binary_that_cannot_execute_is_a_problem() -> None:
    def denied(argv: Sequence[str]) -> str:
        raise PermissionError(13, "Permission denied")

    assert "could not run" in (probe_gpus(denied).problem or "")
