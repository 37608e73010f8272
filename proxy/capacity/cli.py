"""`sla-proxy capacity`: how many sequences fit in a GPU's KV cache, and the
`--max-limit` the proxy should use. The arithmetic is in `plan.py`; this module
reads the options, picks the model and prints the answer (text or `--json`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from proxy.capacity.plan import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_OVERHEAD_GIB,
    GIB,
    Budget,
    Mistake,
    ModelMemory,
    Plan,
    budget_mistakes,
    classic_mistakes,
    kv_cost,
    make_plan,
)
from proxy.llm.models import DTYPE_BYTES, PRESETS, ModelSpec


def _count(text: str) -> float:
    """Parameter counts like 8.03e9, 8B, 70b, 500M."""
    scale = {"b": 1e9, "m": 1e6, "k": 1e3}.get(text[-1:].lower(), 1.0)
    number = text[:-1] if scale != 1.0 else text
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a parameter count: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("parameter count must be positive")
    return value


def _dtype(text: str) -> int:
    if text in DTYPE_BYTES:
        return DTYPE_BYTES[text]
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"dtype bytes: a number or {sorted(DTYPE_BYTES)}"
        ) from None
    if value not in (1, 2, 4):
        raise argparse.ArgumentTypeError("dtype bytes must be 1, 2 or 4")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", choices=sorted(PRESETS), help="a built-in model shape")
    source.add_argument("--hf-config", metavar="PATH", help="a Hugging Face config.json")
    shape = parser.add_argument_group("explicit shape (instead of --model / --hf-config)")
    shape.add_argument("--layers", type=int)
    shape.add_argument("--kv-heads", type=int, help="num_key_value_heads")
    shape.add_argument("--attention-heads", type=int, help="num_attention_heads (for GQA notes)")
    shape.add_argument("--head-dim", type=int)
    parser.add_argument(
        "--dtype-bytes", type=_dtype, help="weights and KV: 2 (bf16), 4, 1 or a name"
    )
    parser.add_argument("--kv-dtype-bytes", type=_dtype, help="KV cache only (fp8 KV: 1)")
    parser.add_argument("--params", type=_count, help="parameter count, e.g. 8.03e9 or 8B")
    parser.add_argument("--gpu-memory-gb", type=float, help="GPU memory in GiB (as reported)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument(
        "--overhead-gb",
        type=float,
        default=DEFAULT_OVERHEAD_GIB,
        help=f"activations, CUDA graphs, allocator (GiB, default {DEFAULT_OVERHEAD_GIB})",
    )
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--avg-len", type=int, help="expected prompt+output tokens (default 1024)")
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument("--max-num-seqs", type=int, help="vLLM's cap on running sequences")
    parser.add_argument(
        "--metrics-url",
        metavar="URL",
        help="read num_gpu_blocks and block_size from a running vLLM's /metrics",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _model(args: argparse.Namespace) -> ModelMemory:
    spec: ModelSpec | None = None
    if args.model:
        spec = PRESETS[args.model]
    elif args.hf_config:
        path = Path(args.hf_config)
        # A snapshot's config.json is named after its folder; a renamed copy after itself.
        spec = ModelSpec.from_hf_config(path, None if path.name == "config.json" else path.stem)
    if spec is not None:
        if args.dtype_bytes:
            spec = spec.with_dtype(args.dtype_bytes)
        memory = ModelMemory.of(spec, args.kv_dtype_bytes)
        if args.params:
            memory = _with_weights(memory, round(args.params * spec.dtype_bytes))
        return memory
    missing = [f"--{n}" for n in ("layers", "kv_heads", "head_dim") if not getattr(args, n)]
    if missing:
        raise ValueError("give --model, --hf-config, or all of " + ", ".join(missing))
    dtype = args.dtype_bytes or 2
    kv_dtype = args.kv_dtype_bytes or dtype
    heads = args.attention_heads or args.kv_heads
    if min(args.layers, args.kv_heads, args.head_dim, heads) < 1:
        raise ValueError("shape values must be positive")
    weights = round(args.params * dtype) if args.params else 0
    if not weights and not args.metrics_url:
        raise ValueError("give --params (weights are subtracted from the budget)")
    return ModelMemory(
        name="custom",
        kv_bytes_per_token=kv_cost(args.layers, args.kv_heads, args.head_dim, kv_dtype),
        weight_bytes=weights,
        num_layers=args.layers,
        num_attention_heads=heads,
        num_kv_heads=args.kv_heads,
        head_dim=args.head_dim,
        kv_dtype_bytes=kv_dtype,
    )


def _with_weights(memory: ModelMemory, weight_bytes: int) -> ModelMemory:
    fields = asdict(memory)
    fields["weight_bytes"] = weight_bytes
    return ModelMemory(**fields)


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def _render(plan: Plan, model: ModelMemory, budget: Budget | None, mistakes: list[Mistake]) -> str:
    m = model
    lines = [
        f"model              {m.name}: {m.num_layers} layers, {m.num_kv_heads} KV heads "
        f"(of {m.num_attention_heads} query heads) x head_dim {m.head_dim}, "
        f"{m.kv_dtype_bytes}-byte KV",
        f"KV per token       2 (K,V) x {m.num_layers} x {m.num_kv_heads} x {m.head_dim} x "
        f"{m.kv_dtype_bytes} B = {plan.kv_bytes_per_token:,} B "
        f"({plan.kv_bytes_per_token / 1024:g} KiB)",
    ]
    if budget is not None:
        lines.append(
            f"KV budget          {budget.gpu_memory_gib:g} GiB x {budget.utilization:g} "
            f"- weights {_gib(plan.weight_bytes)} - overhead {budget.overhead_gib:g} GiB "
            f"= {_gib(plan.kv_budget_bytes)}"
        )
    else:
        lines.append(f"KV cache           measured by vLLM: {_gib(plan.kv_budget_bytes)}")
    lines += [
        f"blocks             {plan.num_blocks:,} x {plan.block_size} tokens "
        f"({plan.block_bytes / 2**20:g} MiB each) = {plan.tokens:,} tokens",
        f"sequences          {plan.seqs_at_max_len:,} at max_model_len {plan.max_model_len:,}; "
        f"{plan.seqs_at_avg_len:,} at the average {plan.avg_len:,} tokens",
        f"pre-allocated      {plan.preallocated_seqs:,} sequences: each reserves "
        f"{plan.max_model_len:,} tokens, {plan.preallocated_waste_tokens_per_seq:,} of them "
        f"unused at the average ({1 - plan.avg_len / plan.max_model_len:.0%})",
        f"paged              {plan.seqs_at_avg_len:,} sequences: waste < 1 block each "
        f"({plan.paged_waste_tokens_per_seq} tokens at the average), "
        f"{plan.paged_gain:.1f}x pre-allocation",
        f"recommended        sla-proxy serve --max-limit {plan.recommended_max_limit} "
        f"(limited by {plan.limited_by.replace('_', ' ')})",
        "corrections        applied here; what each classic mistake would have given:",
    ]
    for mistake in mistakes:
        lines.append(
            f"  - {mistake.what}: {mistake.tokens_factor:.2f}x the tokens "
            f"({round(plan.tokens * mistake.tokens_factor):,} instead of {plan.tokens:,})"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        model = _model(args)
        avg_len = args.avg_len or min(1024, args.max_model_len)
        budget: Budget | None = None
        num_blocks: int | None = None
        block_size = args.block_size
        if args.metrics_url:
            from proxy.capacity.vllm_metrics import fetch_cache_config

            cache = fetch_cache_config(args.metrics_url)
            num_blocks, block_size = cache.num_gpu_blocks, cache.block_size
        else:
            if args.gpu_memory_gb is None:
                raise ValueError("give --gpu-memory-gb (or --metrics-url of a running vLLM)")
            budget = Budget(args.gpu_memory_gb, args.gpu_memory_utilization, args.overhead_gb)
        plan = make_plan(
            model, args.max_model_len, avg_len, budget, num_blocks, block_size, args.max_num_seqs
        )
    except (ValueError, OSError, KeyError) as exc:
        print(f"sla-proxy capacity: error: {exc}", file=sys.stderr)
        return 2
    mistakes = classic_mistakes(model) + (budget_mistakes(model, budget) if budget else [])
    if args.json:
        out: dict[str, Any] = {
            **asdict(plan),
            "paged_gain": plan.paged_gain,
            "budget": asdict(budget) if budget else None,
            "mistakes_avoided": [asdict(m) for m in mistakes],
        }
        print(json.dumps(out, indent=2))
    else:
        print(_render(plan, model, budget, mistakes))
    return 0
