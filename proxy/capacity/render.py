"""`capacity`'s answer as text or JSON: which hardware, the per-token KV sum, the budget,
then one plan in detail or, for several max_model_len values, one table of them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from proxy.capacity.hardware import HardwareChoice
from proxy.capacity.inputs import TypicalLength
from proxy.capacity.mistakes import Mistake
from proxy.capacity.plan import GIB, Budget, ModelMemory, Plan

LABEL = 19  # width of the label column


@dataclass(frozen=True, slots=True)
class Answer:
    model: ModelMemory
    hardware: HardwareChoice | None  # None when vLLM's own block count was read
    budget: Budget | None
    typical: TypicalLength
    plans: list[Plan]
    mistakes: list[Mistake]


def _line(label: str, text: str) -> str:
    return f"{label:<{LABEL}}{text}".rstrip()


def _num(x: float) -> str:
    """At most two decimals, none when whole: 80, 79.65, 121.7."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def _hardware(hw: HardwareChoice) -> list[str]:
    lines = []
    for gpu in hw.gpus:
        total = f"{gpu.total_mib / 1024:.2f} GiB" if gpu.total_mib is not None else "memory [N/A]"
        free = f", {gpu.free_mib / 1024:.2f} GiB free" if gpu.free_mib is not None else ""
        mark = "  <- planned for" if gpu.index == hw.gpu_index and len(hw.gpus) > 1 else ""
        label = "GPUs (nvidia-smi)" if gpu.index == 0 else ""
        lines.append(_line(label, f"{gpu.index}: {gpu.name}, {total}{free}{mark}"))
    choose = " (--gpu-index to choose)" if len(hw.gpus) > 1 else ""
    lines.append(_line("hardware", hw.description + choose))
    lines += [_line("note", note) for note in hw.notes]
    return lines


def _head(a: Answer) -> list[str]:
    m, first = a.model, a.plans[0]
    lines = _hardware(a.hardware) if a.hardware else []
    lines += [
        _line(
            "model",
            f"{m.name}: {m.num_layers} layers, {m.num_kv_heads} KV heads (of "
            f"{m.num_attention_heads} query heads) x head_dim {m.head_dim}, "
            f"{m.kv_dtype_bytes}-byte KV",
        ),
        _line(
            "KV per token",
            f"2 (K,V) x {m.num_layers} x {m.num_kv_heads} x {m.head_dim} x {m.kv_dtype_bytes} B "
            f"= {m.kv_bytes_per_token:,} B ({m.kv_bytes_per_token / 1024:g} KiB)",
        ),
    ]
    if a.budget is not None:
        b = a.budget
        lines.append(
            _line(
                "KV budget",
                f"{_num(b.gpu_memory_gib)} GiB x {b.utilization:g} - weights "
                f"{_gib(first.weight_bytes)} - overhead {b.overhead_gib:g} GiB "
                f"= {_gib(first.kv_budget_bytes)}",
            )
        )
    else:
        lines.append(_line("KV cache", f"measured by vLLM: {_gib(first.kv_budget_bytes)}"))
    lines += [
        _line(
            "blocks",
            f"{first.num_blocks:,} x {first.block_size} tokens "
            f"({first.block_bytes / 2**20:g} MiB each) = {first.tokens:,} tokens",
        ),
        _line("typical sequence", f"{a.typical.tokens:,} tokens ({a.typical.source})"),
    ]
    return lines


def _detail(p: Plan) -> list[str]:
    if p.fits:
        limit = (
            f"sla-proxy serve --max-limit {p.recommended_max_limit} "
            f"(limited by {p.limited_by.replace('_', ' ')})"
        )
    else:
        limit = "none: one max_model_len sequence exceeds the cache; vLLM refuses to start"
    gain = f"{p.paged_gain:.1f}x pre-allocation" if p.preallocated_seqs else "pre-allocation: none"
    return [
        _line(
            "sequences",
            f"{p.seqs_at_max_len:,} at max_model_len {p.max_model_len:,}; "
            f"{p.seqs_at_avg_len:,} at the typical {p.avg_len:,} tokens",
        ),
        _line(
            "pre-allocated",
            f"{p.preallocated_seqs:,} sequences: each reserves {p.max_model_len:,} tokens, "
            f"{p.preallocated_waste_tokens_per_seq:,} of them unused at the typical length "
            f"({1 - p.avg_len / p.max_model_len:.0%})",
        ),
        _line(
            "paged",
            f"{p.seqs_at_avg_len:,} sequences: waste < 1 block each "
            f"({p.paged_waste_tokens_per_seq} tokens at the typical length), {gain}",
        ),
        _line("recommended", limit),
    ]


def _table(a: Answer) -> list[str]:
    typical = f"paged at {a.typical.tokens:,}"
    head = ("max_model_len", "pre-allocated", typical, "gain", "--max-limit")
    rows = []
    for p in a.plans:
        paged = f"{p.seqs_at_avg_len:,}" + (
            f" (at {p.avg_len:,})" if p.avg_len < a.typical.tokens else ""
        )
        if not p.fits:
            rows.append((f"{p.max_model_len:,}", "0", "0", "-", "does not fit"))
            continue
        capped = "*" if p.limited_by == "max_num_seqs" else ""
        rows.append(
            (
                f"{p.max_model_len:,}",
                f"{p.preallocated_seqs:,}",
                paged,
                f"{p.paged_gain:.1f}x",
                f"{p.recommended_max_limit:,}{capped}",
            )
        )
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += [
        "pre-allocated: each sequence reserves max_model_len tokens up front.",
        f"paged (vLLM): blocks of {a.plans[0].block_size} tokens taken as a sequence grows, "
        "less than one wasted; the",
        "  count follows the typical length, not max_model_len, and is the --max-limit to give.",
    ]
    if any(p.limited_by == "max_num_seqs" for p in a.plans):
        lines.append("* capped by --max-num-seqs (vLLM runs no more sequences than that)")
    if not all(p.fits for p in a.plans):
        lines.append(
            "does not fit: one max_model_len sequence exceeds the cache; vLLM refuses to start"
        )
    return lines


def _corrections(a: Answer) -> list[str]:
    tokens = a.plans[0].tokens
    lines = [_line("corrections", "applied here; what each classic mistake would have given:")]
    for mistake in a.mistakes:
        lines.append(
            f"  - {mistake.what}: {mistake.tokens_factor:.2f}x the tokens "
            f"({round(tokens * mistake.tokens_factor):,} instead of {tokens:,})"
        )
    return lines


def render_text(a: Answer) -> str:
    body = _detail(a.plans[0]) if len(a.plans) == 1 else ["", *_table(a), ""]
    return "\n".join(_head(a) + body + _corrections(a))


def _plan_json(p: Plan) -> dict[str, Any]:
    gain = p.paged_gain
    return {**asdict(p), "paged_gain": gain if math.isfinite(gain) else None, "fits": p.fits}


def render_json(a: Answer) -> dict[str, Any]:
    plans = [_plan_json(p) for p in a.plans]
    # One length keeps the plan's fields at the top, as before the table existed.
    flat = plans[0] if len(plans) == 1 else {}
    return {
        **flat,
        "hardware": asdict(a.hardware) if a.hardware else None,
        "budget": asdict(a.budget) if a.budget else None,
        "typical_len": asdict(a.typical),
        "plans": plans,
        "mistakes_avoided": [asdict(m) for m in a.mistakes],
    }
