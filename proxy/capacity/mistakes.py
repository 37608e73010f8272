"""The classic mistakes of KV-cache arithmetic, evaluated for one model and budget, so
the planner's output can say how far off each would have been (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from proxy.capacity.plan import GIB, Budget, ModelMemory, kv_cost


@dataclass(frozen=True, slots=True)
class Mistake:
    what: str
    wrong_kv_bytes_per_token: int
    tokens_factor: float  # wrong token count / right token count


def classic_mistakes(model: ModelMemory) -> list[Mistake]:
    """The usual errors, evaluated for this model, so the output can say what each
    would have got wrong (only those that change the answer for this model)."""
    right = model.kv_bytes_per_token
    mistakes = [
        Mistake("forgetting the factor 2 for K and V", right // 2, 2.0),
    ]
    if model.num_attention_heads != model.num_kv_heads:
        wrong = kv_cost(
            model.num_layers, model.num_attention_heads, model.head_dim, model.kv_dtype_bytes
        )
        mistakes.append(
            Mistake(
                f"using num_attention_heads ({model.num_attention_heads}) instead of "
                f"num_key_value_heads ({model.num_kv_heads})",
                wrong,
                right / wrong,
            )
        )
    return mistakes


def budget_mistakes(model: ModelMemory, budget: Budget) -> list[Mistake]:
    """Budget errors: decimal gigabytes, and leaving the weights in the KV budget."""
    right = budget.kv_bytes(model.weight_bytes)
    if right <= 0:
        return []
    decimal = math.floor(
        budget.gpu_memory_gib * 1e9 * budget.utilization
        - model.weight_bytes
        - budget.overhead_gib * 1e9
    )
    with_weights = budget.kv_bytes(0)
    per_token = model.kv_bytes_per_token
    return [
        Mistake(
            "taking GB as 10^9 bytes where the GPU reports GiB (2^30)", per_token, decimal / right
        ),
        Mistake(
            f"not subtracting the weights ({model.weight_bytes / GIB:.2f} GiB)",
            per_token,
            with_weights / right,
        ),
    ]
