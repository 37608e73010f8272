"""Transformer shapes and the memory arithmetic that follows from them.

Shared by the simulator's roofline and the capacity planner, so both agree on
how many bytes a token of KV cache costs and how heavy the weights are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DTYPE_BYTES = {
    "float32": 4,
    "fp32": 4,
    "bfloat16": 2,
    "bf16": 2,
    "float16": 2,
    "fp16": 2,
    "fp8": 1,
    "int8": 1,
}


_POSITIVE_FIELDS = (
    "num_layers",
    "hidden_size",
    "num_attention_heads",
    "num_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "dtype_bytes",
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    dtype_bytes: int = 2  # weights and KV cache in bf16 unless said otherwise
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        for field in _POSITIVE_FIELDS:
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be positive")
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError("num_attention_heads must be a multiple of num_kv_heads")

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V, every layer, every KV head: 2 x layers x kv_heads x head_dim x bytes."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes

    @property
    def num_parameters(self) -> int:
        """Parameters of a Llama-style decoder (GQA attention, gated MLP, RMSNorm)."""
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        q = self.num_attention_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h
        mlp = 3 * h * self.intermediate_size
        per_layer = attention + mlp + 2 * h
        embeddings = self.vocab_size * h * (1 if self.tie_embeddings else 2)
        return self.num_layers * per_layer + embeddings + h

    @property
    def weight_bytes(self) -> int:
        return self.num_parameters * self.dtype_bytes

    @property
    def flops_per_token(self) -> float:
        """Forward FLOPs per token for the dense matmuls (2 x parameters)."""
        return 2.0 * self.num_parameters

    def with_dtype(self, dtype_bytes: int) -> ModelSpec:
        return replace(self, dtype_bytes=dtype_bytes)

    @classmethod
    def from_hf_config(cls, path: Path | str, name: str | None = None) -> ModelSpec:
        """Read a Hugging Face `config.json` (Llama, Mistral, Qwen2 and alike)."""
        config: dict[str, Any] = json.loads(Path(path).read_text())
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
        return cls(
            name=name or str(config.get("_name_or_path") or Path(path).parent.name or "custom"),
            num_layers=int(config["num_hidden_layers"]),
            hidden_size=hidden,
            num_attention_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            dtype_bytes=DTYPE_BYTES.get(dtype, 2),
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        )


PRESETS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("llama-3.1-8b", 32, 4096, 32, 8, 128, 14336, 128256),
        ModelSpec("llama-3.1-70b", 80, 8192, 64, 8, 128, 28672, 128256),
        ModelSpec("mistral-7b", 32, 4096, 32, 8, 128, 14336, 32000),
        ModelSpec("qwen2.5-7b", 28, 3584, 28, 4, 128, 18944, 152064),
        ModelSpec("qwen2.5-72b", 80, 8192, 64, 8, 128, 29568, 152064),
        # The random-weight model the CPU vLLM end-to-end test builds (float32).
        ModelSpec("tiny-llama", 4, 256, 4, 2, 64, 512, 8000, dtype_bytes=4),
    )
}
