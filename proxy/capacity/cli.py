"""`sla-proxy capacity`: how many sequences fit in a GPU's KV cache, and the
`--max-limit` the proxy should use. It needs no flags beyond the model: the GPU is
read with nvidia-smi, or a named hardware profile is assumed and said. The arithmetic
is in `plan.py`, the hardware choice in `hardware.py`, the output in `render.py`."""

from __future__ import annotations

import argparse
import json
import sys

from proxy.capacity import inputs
from proxy.capacity.gpu import GpuProbe, Runner, probe_gpus, run_command
from proxy.capacity.hardware import DEFAULT_HARDWARE, PROFILES, HardwareChoice, choose_hardware
from proxy.capacity.mistakes import budget_mistakes, classic_mistakes
from proxy.capacity.plan import DEFAULT_BLOCK_SIZE, DEFAULT_OVERHEAD_GIB, Budget, make_plans
from proxy.capacity.render import Answer, render_json, render_text
from proxy.llm.models import PRESETS


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
        "--dtype-bytes", type=inputs.dtype_bytes, help="weights and KV: 2 (bf16), 4, 1 or a name"
    )
    parser.add_argument("--kv-dtype-bytes", type=inputs.dtype_bytes, help="KV cache only (fp8: 1)")
    parser.add_argument("--params", type=inputs.parameter_count, help="e.g. 8.03e9 or 8B")
    hw = parser.add_argument_group("hardware (default: read with nvidia-smi, else assume one)")
    memory = hw.add_mutually_exclusive_group()
    memory.add_argument("--gpu-memory-gb", type=float, help="GPU memory in GiB (as reported)")
    memory.add_argument(
        "--hardware",
        choices=list(PROFILES),
        help=f"a named machine instead of nvidia-smi (assumed without a GPU: {DEFAULT_HARDWARE})",
    )
    hw.add_argument("--gpu-index", type=int, help="which of nvidia-smi's GPUs (default 0)")
    hw.add_argument(
        "--gpu-memory-utilization",
        type=float,
        help="vLLM's setting (default 0.9; the dgx-spark profile's 0.7)",
    )
    hw.add_argument(
        "--overhead-gb",
        type=float,
        default=DEFAULT_OVERHEAD_GIB,
        help=f"activations, CUDA graphs, allocator (GiB, default {DEFAULT_OVERHEAD_GIB})",
    )
    parser.add_argument(
        "--max-model-len",
        type=inputs.lengths,
        default=(8192,),
        metavar="N[,N...]",
        help="one length (default 8192), or several for a pre-allocated vs paged table",
    )
    typical = parser.add_argument_group(
        "typical sequence (default "
        f"{inputs.DEFAULT_PROMPT_LEN} prompt + {inputs.DEFAULT_OUTPUT_LEN} output tokens)"
    )
    typical.add_argument("--avg-len", type=int, help="mean prompt+output tokens")
    typical.add_argument("--prompt-len", type=int, help="mean prompt tokens")
    typical.add_argument("--output-len", type=int, help="mean output tokens")
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument("--max-num-seqs", type=int, help="vLLM's cap on running sequences")
    parser.add_argument(
        "--metrics-url",
        metavar="URL",
        help="read num_gpu_blocks and block_size from a running vLLM's /metrics",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _answer(args: argparse.Namespace, runner: Runner) -> Answer:
    model = inputs.model_memory(args)
    typical = inputs.typical_length(args)
    hardware: HardwareChoice | None = None
    budget: Budget | None = None
    num_blocks: int | None = None
    block_size = args.block_size
    if args.metrics_url:
        from proxy.capacity.vllm_metrics import fetch_cache_config

        cache = fetch_cache_config(args.metrics_url)
        num_blocks, block_size = cache.num_gpu_blocks, cache.block_size
    else:

        def probe() -> GpuProbe:
            return probe_gpus(runner)

        hardware = choose_hardware(
            gpu_memory_gib=args.gpu_memory_gb,
            profile=args.hardware,
            gpu_index=args.gpu_index,
            utilization=args.gpu_memory_utilization,
            probe=probe,
        )
        budget = Budget(hardware.memory_gib, hardware.utilization, args.overhead_gb)
    try:
        plans = make_plans(
            model,
            args.max_model_len,
            typical.tokens,
            budget,
            num_blocks,
            block_size,
            args.max_num_seqs,
        )
    except ValueError as exc:
        raise ValueError(f"{hardware.description}: {exc}" if hardware else str(exc)) from None
    mistakes = classic_mistakes(model) + (budget_mistakes(model, budget) if budget else [])
    return Answer(model, hardware, budget, typical, plans, mistakes)


def run(args: argparse.Namespace, runner: Runner = run_command) -> int:
    """`runner` runs nvidia-smi; tests pass one that replays recorded output."""
    try:
        answer = _answer(args, runner)
    except (ValueError, OSError, KeyError) as exc:
        print(f"sla-proxy capacity: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(render_json(answer), indent=2))
    else:
        print(render_text(answer))
    return 0
