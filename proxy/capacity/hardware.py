"""Which memory the planner budgets: given, a named profile, read by nvidia-smi, or
assumed, and always said which (pure; the GPU reading is passed in).

Order: `--gpu-memory-gb` (the user knows), then `--hardware NAME`, then the GPU that
nvidia-smi lists, then the lab's machine (DGX Spark). Memory is in GiB, as nvidia-smi
(MiB) and vLLM's logs report it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from proxy.capacity.gpu import Gpu, GpuProbe

DEFAULT_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization default


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    name: str
    description: str
    memory_gib: float  # what CUDA reports as total, which vLLM multiplies by the utilization
    utilization: float = DEFAULT_UTILIZATION
    matches: tuple[str, ...] = ()  # nvidia-smi names that report no memory but are this device


PROFILES: dict[str, HardwareProfile] = {
    p.name: p
    for p in (
        # 128 GB of LPDDR5x shared by CPU and GPU; the OS and CUDA see 121.7 GiB of it
        # (MemTotal 127,600,748 kB on a GB10), and nvidia-smi reports [N/A]. 0.7 leaves
        # the OS and the server's CPU side their share, as the simulator's profile does.
        HardwareProfile(
            "dgx-spark",
            "DGX Spark (GB10): 128 GB unified memory, 121.7 GiB of it visible to CUDA",
            121.7,
            0.7,
            ("GB10",),
        ),
        # Discrete GPUs: memory.total as nvidia-smi prints it, in MiB / 1024.
        HardwareProfile("h100-80gb", "H100 80GB: 81,559 MiB", 81559 / 1024),
        HardwareProfile("a100-80gb", "A100 80GB: 81,920 MiB", 81920 / 1024),
        HardwareProfile("a100-40gb", "A100 40GB: 40,960 MiB", 40960 / 1024),
        HardwareProfile("l40s", "L40S: 46,068 MiB", 46068 / 1024),
        HardwareProfile("l4", "L4: 23,034 MiB", 23034 / 1024),
        HardwareProfile("rtx-4090", "RTX 4090: 24,564 MiB", 24564 / 1024),
    )
}
DEFAULT_HARDWARE = "dgx-spark"  # the lab's machine


@dataclass(frozen=True, slots=True)
class HardwareChoice:
    source: str  # "option" | "profile" | "nvidia-smi" | "assumed"
    description: str
    memory_gib: float
    utilization: float
    gpus: tuple[Gpu, ...] = ()  # everything nvidia-smi listed
    gpu_index: int | None = None  # the one planned for
    notes: tuple[str, ...] = ()  # warnings and why something was assumed


def get_profile(name: str) -> HardwareProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown hardware {name!r} (known: {', '.join(PROFILES)})") from None


def _matching_profile(gpu_name: str) -> HardwareProfile | None:
    return next((p for p in PROFILES.values() if any(m in gpu_name for m in p.matches)), None)


def _from_gpu(probe: GpuProbe, index: int, utilization: float | None) -> HardwareChoice:
    gpus = probe.gpus
    if not 0 <= index < len(gpus):
        raise ValueError(f"--gpu-index {index}: nvidia-smi lists GPUs 0 to {len(gpus) - 1}")
    gpu = gpus[index]
    if gpu.total_mib is None:
        # Unified memory: nvidia-smi has no total to report, so take the device's profile.
        profile = _matching_profile(gpu.name)
        if profile is None:
            profile = get_profile(DEFAULT_HARDWARE)
            note = f"no profile knows {gpu.name}: give --gpu-memory-gb"
        else:
            note = f"unified memory: planned with the {profile.name} profile"
        return HardwareChoice(
            "nvidia-smi",
            f"GPU {index}: {gpu.name}, memory not reported; assumed {profile.description}",
            profile.memory_gib,
            utilization or profile.utilization,
            gpus,
            index,
            (f"nvidia-smi reports no memory for {gpu.name}; {note}",),
        )
    total = gpu.total_mib / 1024
    util = utilization or DEFAULT_UTILIZATION
    notes = []
    if gpu.free_mib is not None and gpu.free_mib / 1024 < util * total:
        free = gpu.free_mib / 1024
        # vLLM checks this at start-up and refuses to start ("Free memory on device ...").
        notes.append(
            f"only {free:.2f} GiB free of {total:.2f}: vLLM refuses to start at "
            f"--gpu-memory-utilization {util:g} ({util * total:.2f} GiB); give it at most "
            f"{math.floor(free / total * 100) / 100:g}, or free the GPU"
        )
    return HardwareChoice(
        "nvidia-smi", f"GPU {index}: {gpu.name}", total, util, gpus, index, tuple(notes)
    )


def choose_hardware(
    *,
    gpu_memory_gib: float | None,
    profile: str | None,
    gpu_index: int | None,
    utilization: float | None,
    probe: Callable[[], GpuProbe],
) -> HardwareChoice:
    """`probe` runs only when neither memory nor a profile was given."""
    if gpu_index is not None and (gpu_memory_gib is not None or profile is not None):
        raise ValueError("--gpu-index picks one of nvidia-smi's GPUs: not with a memory given")
    if gpu_memory_gib is not None:
        util = utilization or DEFAULT_UTILIZATION
        return HardwareChoice(
            "option", f"{gpu_memory_gib:g} GiB (--gpu-memory-gb)", gpu_memory_gib, util
        )
    if profile is not None:
        p = get_profile(profile)
        return HardwareChoice(
            "profile",
            f"{p.description} (--hardware {p.name})",
            p.memory_gib,
            utilization or p.utilization,
        )
    reading = probe()
    if reading.gpus:
        return _from_gpu(reading, gpu_index or 0, utilization)
    if gpu_index is not None:
        raise ValueError(f"--gpu-index {gpu_index}, but no GPU was read: {reading.problem}")
    p = get_profile(DEFAULT_HARDWARE)
    return HardwareChoice(
        "assumed",
        f"assumed {p.description}",
        p.memory_gib,
        utilization or p.utilization,
        notes=(f"{reading.problem}; --hardware or --gpu-memory-gb to plan for another machine",),
    )
