"""Which memory the planner budgets, and that it always says where it came from."""

import pytest

from proxy.capacity.gpu import GpuProbe, probe_gpus
from proxy.capacity.hardware import PROFILES, HardwareChoice, choose_hardware
from tests.helpers.nvidia_smi import replay


def choose(probe: GpuProbe, **options: object) -> HardwareChoice:
    given: dict[str, object] = {
        "gpu_memory_gib": None, "profile": None, "gpu_index": None, "utilization": None,
    }  # fmt: skip
    given.update(options)
    return choose_hardware(probe=lambda: probe, **given)  # type: ignore[arg-type]


def never() -> GpuProbe:
    raise AssertionError("nvidia-smi must not run when the memory is given")


ABSENT = GpuProbe((), "no nvidia-smi on PATH")


def test_without_a_gpu_the_dgx_spark_is_assumed_and_said() -> None:
    hw = choose(ABSENT)
    assert hw.source == "assumed"
    assert "DGX Spark" in hw.description and "128 GB" in hw.description
    assert hw.memory_gib == PROFILES["dgx-spark"].memory_gib
    assert hw.utilization == 0.7
    assert any("no nvidia-smi on PATH" in note for note in hw.notes)


def test_nvidia_smi_total_is_the_budget_in_gib() -> None:
    hw = choose(probe_gpus(replay("h100.txt")))
    assert (hw.source, hw.gpu_index) == ("nvidia-smi", 0)
    assert hw.memory_gib == 81559 / 1024
    assert hw.utilization == 0.9 and hw.notes == ()


def test_gpu_index_chooses_among_several() -> None:
    hw = choose(probe_gpus(replay("h100x2-second-busy.txt")), gpu_index=1)
    assert hw.gpu_index == 1 and len(hw.gpus) == 2
    assert hw.description.startswith("GPU 1: NVIDIA H100")


def test_too_little_free_memory_warns_that_vllm_would_not_start() -> None:
    hw = choose(probe_gpus(replay("h100x2-second-busy.txt")), gpu_index=1)
    (note,) = hw.notes
    # 2210 MiB free of 81559: vLLM wants 0.9 x total free at start-up.
    assert "vLLM refuses to start" in note and "at most 0.02" in note


def test_gpu_index_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="GPUs 0 to 1"):
        choose(probe_gpus(replay("h100x2-second-busy.txt")), gpu_index=2)


def test_gpu_index_without_a_gpu_is_an_error() -> None:
    with pytest.raises(ValueError, match="no GPU was read: no nvidia-smi"):
        choose(ABSENT, gpu_index=0)


def test_unified_memory_gpu_takes_its_profile() -> None:
    hw = choose(probe_gpus(replay("gb10.txt")))
    assert hw.source == "nvidia-smi"
    assert hw.memory_gib == PROFILES["dgx-spark"].memory_gib and hw.utilization == 0.7
    assert "memory not reported" in hw.description
    assert "dgx-spark profile" in hw.notes[0]


def test_unknown_gpu_without_memory_asks_for_it() -> None:
    hw = choose(probe_gpus(lambda argv: "Odd GPU, [N/A], [N/A]\n"))
    assert "give --gpu-memory-gb" in hw.notes[0]


def test_given_memory_wins_and_nvidia_smi_is_not_run() -> None:
    hw = choose_hardware(
        gpu_memory_gib=80, profile=None, gpu_index=None, utilization=None, probe=never
    )
    assert (hw.source, hw.memory_gib, hw.utilization) == ("option", 80, 0.9)


def test_a_named_profile_wins_over_nvidia_smi() -> None:
    hw = choose_hardware(
        gpu_memory_gib=None, profile="a100-40gb", gpu_index=None, utilization=0.8, probe=never
    )
    assert (hw.source, hw.memory_gib, hw.utilization) == ("profile", 40.0, 0.8)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="dgx-spark"):
        choose(ABSENT, profile="tpu")
