"""Roofline model of one inference-engine step: how long a batch takes on given hardware.

A step of a continuous-batching engine (vLLM) runs the whole batch through the model
once. It is bound by whichever is slower:

- memory: the weights are read once per step, plus the KV cache of every sequence's
  context (decode attention reads all of it; a prefill chunk reads its prior context);
- compute: 2 FLOPs per parameter per token in the batch, plus attention's
  4 x layers x heads x head_dim FLOPs per (query token, context token) pair.

On top of the roofline, a fixed per-step overhead (kernel launches, scheduler,
sampling) and a per-sequence overhead (input preparation, detokenisation) that real
engines pay and a pure roofline misses. Calibrated against measured H100 step times:
see `proxy.sim.profiles` and the simulator README.

Pure: no clock, no I/O. Shared by the simulator and the capacity planner.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.llm.models import ModelSpec


@dataclass(frozen=True, slots=True)
class Hardware:
    """One accelerator as the roofline sees it."""

    name: str
    memory_bytes: float  # device memory (unified memory on a DGX Spark)
    memory_bandwidth: float  # bytes per second, datasheet figure
    peak_flops: float  # dense 16-bit FLOP/s, datasheet figure
    bandwidth_efficiency: float = 1.0  # fraction of the datasheet bandwidth a step reaches
    compute_efficiency: float = 1.0  # fraction of the datasheet FLOP/s a step reaches
    step_overhead: float = 0.0  # seconds every step pays regardless of its size
    per_seq_overhead: float = 0.0  # seconds per sequence in the step

    def __post_init__(self) -> None:
        for field in ("memory_bytes", "memory_bandwidth", "peak_flops"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be positive")
        for field in ("bandwidth_efficiency", "compute_efficiency"):
            if not 0 < getattr(self, field) <= 1:
                raise ValueError(f"{field} must be in (0, 1]")
        if self.step_overhead < 0 or self.per_seq_overhead < 0:
            raise ValueError("overheads must not be negative")


@dataclass(frozen=True, slots=True)
class StepCost:
    """Where a step's time goes, in seconds; `total` is what the engine waits."""

    memory: float
    compute: float
    overhead: float

    @property
    def total(self) -> float:
        return self.overhead + max(self.memory, self.compute)

    @property
    def memory_bound(self) -> bool:
        return self.memory >= self.compute


@dataclass(frozen=True, slots=True)
class Roofline:
    model: ModelSpec
    hardware: Hardware

    @property
    def _embedding_parameters(self) -> int:
        return self.model.vocab_size * self.model.hidden_size

    @property
    def _attention_flops_per_pair(self) -> float:
        """QK^T and AV: 2 FLOPs each per query head dimension, every layer."""
        m = self.model
        return 4.0 * m.num_layers * m.num_attention_heads * m.head_dim

    def step_cost(
        self,
        *,
        decode_seqs: int,
        decode_context: int,
        prefill_tokens: int = 0,
        prefill_seqs: int = 0,
        prefill_prior_context: int = 0,
        prefill_attention_pairs: int = 0,
    ) -> StepCost:
        """Cost of one mixed step.

        decode_context: sum of the context lengths of the decoding sequences.
        prefill_prior_context: tokens already cached before this step's prefill chunks.
        prefill_attention_pairs: sum over prefill tokens of the context each attends to.
        """
        if min(decode_seqs, decode_context, prefill_tokens, prefill_seqs) < 0:
            raise ValueError("step shape must not be negative")
        m, hw = self.model, self.hardware
        kv_tokens_read = decode_context + prefill_prior_context
        memory_bytes = m.weight_bytes + m.kv_bytes_per_token * kv_tokens_read
        # Input embeddings are a lookup, not a matmul; the LM head runs only for the
        # tokens that get sampled (one per decoding or prefill-completing sequence).
        body_params = m.num_parameters - self._embedding_parameters * (1 if m.tie_embeddings else 2)
        sampled = decode_seqs + prefill_seqs
        flops = (
            2.0 * body_params * (decode_seqs + prefill_tokens)
            + 2.0 * self._embedding_parameters * sampled
            + self._attention_flops_per_pair * (decode_context + prefill_attention_pairs)
        )
        seqs = decode_seqs + prefill_seqs
        overhead = (hw.step_overhead + hw.per_seq_overhead * seqs) if seqs else 0.0
        return StepCost(
            memory=memory_bytes / (hw.memory_bandwidth * hw.bandwidth_efficiency),
            compute=flops / (hw.peak_flops * hw.compute_efficiency),
            overhead=overhead,
        )

    def decode_step_time(self, batch: int, context: int) -> float:
        """One decode step for `batch` sequences that each have `context` tokens."""
        return self.step_cost(decode_seqs=batch, decode_context=batch * context).total

    def prefill_time(self, tokens: int) -> float:
        """One sequence's whole prompt in one step (causal attention)."""
        pairs = tokens * (tokens + 1) // 2
        return self.step_cost(
            decode_seqs=0,
            decode_context=0,
            prefill_tokens=tokens,
            prefill_seqs=1,
            prefill_attention_pairs=pairs,
        ).total

    def kv_cache_bytes(self, gpu_memory_utilization: float, reserved_bytes: float = 0.0) -> float:
        """What is left for the KV cache, as vLLM sizes it: a share of device memory
        minus weights minus activations/graphs (`reserved_bytes`)."""
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        budget = self.hardware.memory_bytes * gpu_memory_utilization
        return max(0.0, budget - self.model.weight_bytes - reserved_bytes)

    def num_kv_blocks(
        self, block_size: int, gpu_memory_utilization: float, reserved_bytes: float = 0.0
    ) -> int:
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        per_block = self.model.kv_bytes_per_token * block_size
        return int(self.kv_cache_bytes(gpu_memory_utilization, reserved_bytes) // per_block)
