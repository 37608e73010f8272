"""Simulator profiles: a model on a piece of hardware plus vLLM's engine limits.

`h100-llama3-8b` is fitted to measured H100 decode steps (Llama-3.1-8B shapes, bf16):
within 4% of every point of the batch x context table in REAL-COMPONENTS.md and of
the prefill tokens/s there. `cpu-tiny` mimics vLLM on 2 CPU cores serving the tiny
random-weight model, where per-step and per-sequence overheads dominate the roofline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from proxy.llm.models import PRESETS, ModelSpec
from proxy.llm.roofline import Hardware, Roofline

H100_SXM = Hardware(
    name="H100 80GB HBM3",
    memory_bytes=80e9,
    memory_bandwidth=3.35e12,
    peak_flops=989e12,
    # The fit puts the KV-read slope at the datasheet bandwidth; the batch-1 step's
    # shortfall (75% of bandwidth) is the fixed launch/sync overhead instead.
    bandwidth_efficiency=1.0,
    compute_efficiency=0.7,
    step_overhead=1.1e-3,
    per_seq_overhead=8e-6,
)

DGX_SPARK = Hardware(
    name="DGX Spark (GB10, 128 GB unified LPDDR5x)",
    memory_bytes=128e9,
    memory_bandwidth=273e9,
    # ~1 PFLOP is sparse FP4; dense 16-bit is about an eighth of that.
    peak_flops=125e12,
    bandwidth_efficiency=0.85,
    compute_efficiency=0.6,
    step_overhead=2.0e-3,
    per_seq_overhead=20e-6,
)

CPU_2_CORES = Hardware(
    name="2 x86 cores (vLLM CPU backend, float32, eager)",
    memory_bytes=24 * 2**30,
    memory_bandwidth=20e9,
    peak_flops=150e9,
    bandwidth_efficiency=1.0,
    compute_efficiency=0.37,
    # Python-side scheduling, input preparation and detokenisation dominate a
    # tiny model's step on CPU; fitted to the measured concurrency sweep.
    step_overhead=6.8e-3,
    per_seq_overhead=0.15e-3,
)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    model: ModelSpec
    hardware: Hardware
    served_model_name: str
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    reserved_bytes: float = 0.0  # activations, CUDA graphs: not available to the KV cache
    kv_cache_bytes: float | None = None  # fixed KV space (the CPU backend's setting)
    output_len_median: float = 128.0  # lognormal draw when ignore_eos is not set
    output_len_sigma: float = 0.8

    def __post_init__(self) -> None:
        if min(self.max_model_len, self.max_num_seqs, self.max_num_batched_tokens) <= 0:
            raise ValueError("engine limits must be positive")
        if self.block_size <= 0 or self.output_len_median < 1 or self.output_len_sigma < 0:
            raise ValueError("block_size, output length parameters out of range")
        if self.num_gpu_blocks * self.block_size < self.max_model_len:
            raise ValueError(f"{self.name}: KV cache cannot hold one max_model_len sequence")

    @property
    def roofline(self) -> Roofline:
        return Roofline(self.model, self.hardware)

    @property
    def num_gpu_blocks(self) -> int:
        if self.kv_cache_bytes is not None:
            per_block = self.model.kv_bytes_per_token * self.block_size
            return int(self.kv_cache_bytes // per_block)
        return self.roofline.num_kv_blocks(
            self.block_size, self.gpu_memory_utilization, self.reserved_bytes
        )

    @property
    def kv_capacity_tokens(self) -> int:
        return self.num_gpu_blocks * self.block_size

    def with_blocks(self, num_gpu_blocks: int) -> Profile:
        """The same profile with a KV cache of exactly `num_gpu_blocks` (tests, what-ifs)."""
        per_block = self.model.kv_bytes_per_token * self.block_size
        return replace(self, kv_cache_bytes=float(num_gpu_blocks * per_block))


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="h100-llama3-8b",
            model=PRESETS["llama-3.1-8b"],
            hardware=H100_SXM,
            served_model_name="meta-llama/Llama-3.1-8B-Instruct",
            max_model_len=8192,
            max_num_seqs=1024,  # vLLM V1's default on GPUs with >= 70 GiB
            max_num_batched_tokens=8192,
            reserved_bytes=4e9,
        ),
        Profile(
            name="dgx-spark-llama3-8b",
            model=PRESETS["llama-3.1-8b"],
            hardware=DGX_SPARK,
            served_model_name="meta-llama/Llama-3.1-8B-Instruct",
            max_model_len=8192,
            max_num_seqs=1024,  # vLLM V1's default on GPUs with >= 70 GiB
            max_num_batched_tokens=8192,
            # Unified memory is shared with the OS and the CPU side of the server.
            gpu_memory_utilization=0.7,
            reserved_bytes=4e9,
        ),
        Profile(
            name="cpu-tiny",
            model=PRESETS["tiny-llama"],
            hardware=CPU_2_CORES,
            served_model_name="tiny-llama",
            max_model_len=2048,
            max_num_seqs=128,  # vLLM's CPU default (x world size 1)
            max_num_batched_tokens=2048,
            kv_cache_bytes=float(2 * 2**30),  # VLLM_CPU_KVCACHE_SPACE=2
            output_len_median=48.0,
        ),
    )
}

DEFAULT_PROFILE = "h100-llama3-8b"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r} (known: {known})") from None
