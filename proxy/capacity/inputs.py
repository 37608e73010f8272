"""From `capacity`'s options to the planner's inputs: parameter counts, dtypes, the list
of max_model_len values, the typical sequence length, and the model's memory."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

from proxy.capacity.plan import ModelMemory, kv_cost
from proxy.llm.models import DTYPE_BYTES, PRESETS, ModelSpec

# A typical request when none is described: the planner's long-standing 1,024 tokens.
DEFAULT_PROMPT_LEN = 512
DEFAULT_OUTPUT_LEN = 512


def parameter_count(text: str) -> float:
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


def dtype_bytes(text: str) -> int:
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


def lengths(text: str) -> tuple[int, ...]:
    """`8192` or `2048,4096,8192,16384`: in the order given, without repeats."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of token counts: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("lengths must be positive token counts")
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True, slots=True)
class TypicalLength:
    tokens: int  # prompt + output of a typical sequence, what paging packs
    source: str  # said in the output


def typical_length(args: argparse.Namespace) -> TypicalLength:
    parts = (args.prompt_len, args.output_len)
    if args.avg_len is not None:
        if any(p is not None for p in parts):
            raise ValueError("give --avg-len or --prompt-len/--output-len, not both")
        if args.avg_len < 1:
            raise ValueError("--avg-len must be positive")
        return TypicalLength(args.avg_len, "--avg-len")
    prompt = DEFAULT_PROMPT_LEN if args.prompt_len is None else args.prompt_len
    output = DEFAULT_OUTPUT_LEN if args.output_len is None else args.output_len
    if prompt < 0 or output < 1:
        raise ValueError("--prompt-len must not be negative, --output-len must be positive")
    given = "given" if any(p is not None for p in parts) else "default"
    return TypicalLength(prompt + output, f"{given}: {prompt:,} prompt + {output:,} output")


def model_memory(args: argparse.Namespace) -> ModelMemory:
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
            fields = asdict(memory)
            fields["weight_bytes"] = round(args.params * spec.dtype_bytes)
            memory = ModelMemory(**fields)
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
