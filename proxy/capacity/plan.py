"""KV-cache capacity arithmetic (pure): how many tokens and sequences fit, paged
versus pre-allocated, and the concurrency limit the proxy should use.

The corrections over the usual back-of-the-envelope sums, all applied here:
- K *and* V: 2 x layers x num_key_value_heads x head_dim x dtype bytes per token;
- num_key_value_heads, not num_attention_heads: with GQA (Llama 3, Mistral, Qwen2.5)
  several query heads share one KV head, so counting query heads over-states KV by
  the group factor (4x for Llama-3.1-8B, 8x for 70B);
- binary units: GPU memory is reported in GiB (2^30 bytes, as nvidia-smi's MiB and
  vLLM's logs), so a budget in decimal GB (10^9) is off by 7.4 %;
- the budget is gpu_memory_utilization x total minus the weights minus an overhead
  for activations, CUDA graphs and the allocator, before anything is left for KV.

Paging (vLLM's PagedAttention, blocks of 16 tokens) wastes at most one partly filled
block per sequence; pre-allocation reserves max_model_len per sequence up front.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.llm.models import ModelSpec

GIB = 1 << 30
DEFAULT_OVERHEAD_GIB = 1.5  # activations at the profiling batch, CUDA graphs, allocator slack
DEFAULT_BLOCK_SIZE = 16


@dataclass(frozen=True, slots=True)
class ModelMemory:
    """What the planner needs of a model: KV cost per token and weight bytes."""

    name: str
    kv_bytes_per_token: int
    weight_bytes: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    kv_dtype_bytes: int

    @classmethod
    def of(cls, spec: ModelSpec, kv_dtype_bytes: int | None = None) -> ModelMemory:
        kv_bytes = kv_dtype_bytes or spec.dtype_bytes
        return cls(
            name=spec.name,
            kv_bytes_per_token=kv_cost(spec.num_layers, spec.num_kv_heads, spec.head_dim, kv_bytes),
            weight_bytes=spec.weight_bytes,
            num_layers=spec.num_layers,
            num_attention_heads=spec.num_attention_heads,
            num_kv_heads=spec.num_kv_heads,
            head_dim=spec.head_dim,
            kv_dtype_bytes=kv_bytes,
        )


def kv_cost(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
    """Bytes of KV cache per token: the 2 is K and V."""
    return 2 * layers * kv_heads * head_dim * dtype_bytes


@dataclass(frozen=True, slots=True)
class Budget:
    gpu_memory_gib: float
    utilization: float = 0.9
    overhead_gib: float = DEFAULT_OVERHEAD_GIB

    def __post_init__(self) -> None:
        if not self.gpu_memory_gib > 0:
            raise ValueError("GPU memory must be positive")
        if not 0 < self.utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.overhead_gib < 0:
            raise ValueError("overhead must not be negative")

    def kv_bytes(self, weight_bytes: int) -> int:
        return math.floor(
            self.gpu_memory_gib * GIB * self.utilization - weight_bytes - self.overhead_gib * GIB
        )


@dataclass(frozen=True, slots=True)
class Plan:
    model: str
    kv_bytes_per_token: int
    block_size: int
    block_bytes: int
    weight_bytes: int
    kv_budget_bytes: int
    num_blocks: int
    tokens: int
    max_model_len: int
    avg_len: int
    seqs_at_max_len: int  # paged, every sequence at max_model_len
    seqs_at_avg_len: int  # paged, every sequence at the average length
    preallocated_seqs: int  # contiguous reservation of max_model_len per sequence
    paged_waste_tokens_per_seq: int  # the unfilled tail of the last block
    preallocated_waste_tokens_per_seq: int  # reserved but never written
    recommended_max_limit: int
    limited_by: str  # "kv_cache" or "max_num_seqs"
    source: str  # "estimate" or "vllm_metrics"

    @property
    def fits(self) -> bool:
        """vLLM refuses to start unless one max_model_len sequence fits in the cache."""
        return self.seqs_at_max_len >= 1

    @property
    def paged_gain(self) -> float:
        """How many more sequences paging serves than pre-allocation, at the average length."""
        return self.seqs_at_avg_len / self.preallocated_seqs if self.preallocated_seqs else math.inf


def make_plan(
    model: ModelMemory,
    max_model_len: int,
    avg_len: int,
    budget: Budget | None = None,
    num_blocks: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_num_seqs: int | None = None,
) -> Plan:
    """Estimate from `budget`, or take `num_blocks` as measured by a running vLLM."""
    if max_model_len < 1 or avg_len < 1 or block_size < 1:
        raise ValueError("lengths and block size must be positive")
    if avg_len > max_model_len:
        raise ValueError(f"average length {avg_len} exceeds max_model_len {max_model_len}")
    if max_num_seqs is not None and max_num_seqs < 1:
        raise ValueError("max_num_seqs must be positive")
    block_bytes = model.kv_bytes_per_token * block_size
    if num_blocks is None:
        if budget is None:
            raise ValueError("need a memory budget or a measured block count")
        kv_budget = budget.kv_bytes(model.weight_bytes)
        if kv_budget < block_bytes:
            raise ValueError(
                f"no room for the KV cache: {budget.gpu_memory_gib:g} GiB x {budget.utilization:g}"
                f" - weights {model.weight_bytes / GIB:.2f} GiB - overhead "
                f"{budget.overhead_gib:g} GiB = {kv_budget / GIB:.2f} GiB"
            )
        num_blocks, source = kv_budget // block_bytes, "estimate"
    else:
        kv_budget, source = num_blocks * block_bytes, "vllm_metrics"
    blocks_full = math.ceil(max_model_len / block_size)
    blocks_avg = math.ceil(avg_len / block_size)
    tokens = num_blocks * block_size
    seqs_avg = num_blocks // blocks_avg
    recommended, limited_by = seqs_avg, "kv_cache"
    if max_num_seqs is not None and max_num_seqs < seqs_avg:
        recommended, limited_by = max_num_seqs, "max_num_seqs"
    return Plan(
        model=model.name,
        kv_bytes_per_token=model.kv_bytes_per_token,
        block_size=block_size,
        block_bytes=block_bytes,
        weight_bytes=model.weight_bytes,
        kv_budget_bytes=kv_budget,
        num_blocks=num_blocks,
        tokens=tokens,
        max_model_len=max_model_len,
        avg_len=avg_len,
        seqs_at_max_len=num_blocks // blocks_full,
        seqs_at_avg_len=seqs_avg,
        preallocated_seqs=tokens // max_model_len,
        paged_waste_tokens_per_seq=blocks_avg * block_size - avg_len,
        preallocated_waste_tokens_per_seq=max_model_len - avg_len,
        recommended_max_limit=max(1, recommended),
        limited_by=limited_by,
        source=source,
    )


def make_plans(
    model: ModelMemory,
    max_model_lens: Sequence[int],
    avg_len: int,
    budget: Budget | None = None,
    num_blocks: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_num_seqs: int | None = None,
) -> list[Plan]:
    """One plan per max_model_len (the lab's exercise 2). A typical length above a
    max_model_len is capped at it: vLLM refuses longer sequences."""
    if not max_model_lens:
        raise ValueError("give at least one max_model_len")
    return [
        make_plan(model, n, min(avg_len, n), budget, num_blocks, block_size, max_num_seqs)
        for n in max_model_lens
    ]
