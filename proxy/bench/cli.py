"""`sla-proxy bench`: concurrency or request-rate sweep against an OpenAI-compatible URL.

Heavy imports (aiohttp, matplotlib) happen inside `run`, so building the parser stays
cheap for the CLI registry.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.bench.sweep import SweepConfig


def _numbers(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"levels must be positive numbers: {text!r}")
    return values


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="base URL of vLLM, the proxy or the sim")
    parser.add_argument(
        "--compare", metavar="URL2", help="second endpoint, swept interleaved with the first"
    )
    parser.add_argument(
        "--names",
        default=None,
        metavar="A[,B]",
        help="labels for the endpoints in tables and plots (default: url, compare)",
    )
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--concurrency",
        type=_numbers,
        metavar="C1,C2,...",
        help="closed-loop levels (default 1,2,4,8,16,32,64,128)",
    )
    load.add_argument(
        "--rates", type=_numbers, metavar="R1,R2,...", help="open-loop Poisson rates, req/s"
    )
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--requests",
        type=int,
        help="requests per level (default: max(32, 4 x concurrency) or max(32, 10 s x rate))",
    )
    amount.add_argument("--duration", type=float, metavar="S", help="seconds per level")
    parser.add_argument(
        "--max-time",
        type=float,
        default=900.0,
        metavar="S",
        help="cap on the whole run; in-flight requests are cut when it hits (default 900)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, metavar="S", help="per-request limit (300)"
    )
    parser.add_argument("--prompts", type=Path, metavar="FILE.jsonl", help="'prompt' or 'messages'")
    parser.add_argument("--max-tokens", type=int, help="output tokens per request (default 128)")
    parser.add_argument(
        "--ignore-eos", action="store_true", help="ask for exactly max_tokens (vLLM extension)"
    )
    parser.add_argument(
        "--output-len",
        metavar="lognormal:MEAN,SIGMA",
        help="seeded lognormal max_tokens per request, capped by --max-tokens",
    )
    parser.add_argument("--seed", type=int, default=0, help="prompt, length and arrival draws")
    parser.add_argument("--model", help="model name (default: first of /v1/models)")
    parser.add_argument("--api", choices=("chat", "completions"), default="chat")
    parser.add_argument(
        "--slo",
        metavar="ttft=..,tpot=..,e2e=..",
        help="goodput SLOs, seconds or with ms suffix, e.g. ttft=500ms,tpot=50ms",
    )
    parser.add_argument(
        "--min-gain",
        type=float,
        default=0.10,
        help="saturation: throughput gain per level below this (0.10)",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="write sweep.json, .csv, .png")


def _config(args: argparse.Namespace) -> SweepConfig:
    from proxy.bench.sweep import DEFAULT_CONCURRENCY, Endpoint, SweepConfig
    from proxy.load.prompts import OutputLength, builtin_prompts, load_jsonl
    from proxy.load.stats import Slo

    urls = [args.url] + ([args.compare] if args.compare else [])
    names = args.names.split(",") if args.names else ["url", "compare"][: len(urls)]
    if len(names) != len(urls):
        raise ValueError(f"--names needs {len(urls)} label(s)")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError("--max-tokens must be at least 1")
    return SweepConfig(
        endpoints=tuple(
            Endpoint(name.strip(), url, args.model) for name, url in zip(names, urls, strict=True)
        ),
        mode="rate" if args.rates else "concurrency",
        levels=args.rates or args.concurrency or DEFAULT_CONCURRENCY,
        requests=args.requests,
        duration=args.duration,
        api=args.api,
        prompts=load_jsonl(args.prompts) if args.prompts else builtin_prompts(),
        output_len=OutputLength.parse(args.output_len, args.max_tokens),
        ignore_eos=args.ignore_eos,
        seed=args.seed,
        slo=Slo.parse(args.slo),
        max_total_seconds=args.max_time,
        request_timeout=args.timeout,
        min_gain=args.min_gain,
    )


def run(args: argparse.Namespace) -> int:
    from proxy.bench import plot, report
    from proxy.bench.progress import ProgressBar
    from proxy.bench.sweep import BenchError, run_sweep

    try:
        config = _config(args)
    except (ValueError, OSError) as exc:
        print(f"sla-proxy bench: error: {exc}", file=sys.stderr)
        return 2
    bar = ProgressBar(sys.stderr)
    try:
        result = asyncio.run(run_sweep(config, progress=bar))
    except BenchError as exc:
        print(f"sla-proxy bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nsla-proxy bench: interrupted", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(report.table(result))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        report.write_json(result, args.out / "sweep.json")
        report.write_csv(result, args.out / "sweep.csv")
        written = ["sweep.json", "sweep.csv"]
        if plot.write_png(result, args.out / "sweep.png"):
            written.append("sweep.png")
        else:
            print("matplotlib not installed (pip install .[plot]): no PNG", file=sys.stderr)
        print(f"wrote {', '.join(str(args.out / name) for name in written)}", file=sys.stderr)
    return 0 if any(s.ok for s in result.levels) else 1
