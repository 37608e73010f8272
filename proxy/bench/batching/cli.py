"""`sla-proxy batching`: static vs continuous batching on the same requests (simulated time).

Writes batching.md (tables and where "2-4x" holds), batching.json and batching.png to
--out. The defaults are the committed results in deploy/results/batching/ (about a
minute of CPU); `--quick` is a scaled-down run for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from proxy.sim.profiles import DEFAULT_PROFILE, PROFILES


def _numbers(text: str) -> tuple[float, ...]:
    try:
        values = tuple(
            math.inf if part.strip() in ("inf", "saturated") else float(part)
            for part in text.split(",")
            if part.strip()
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"need non-negative numbers: {text!r}")
    return values


def _sizes(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1: {text!r}")
    return values


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument("--requests", type=int, default=4000, help="requests per run")
    parser.add_argument(
        "--sigmas", type=_numbers, default=(0.0, 0.25, 0.5, 0.8, 1.0, 1.25),
        help="output-length lognormal sigmas to sweep",
    )  # fmt: skip
    parser.add_argument(
        "--loads", type=_numbers, default=(0.25, 0.5, 0.75, 1.0, math.inf),
        help="offered load as a fraction of continuous capacity (inf: all queued at once)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="slots in the sigma x load grid")
    parser.add_argument(
        "--batch-sizes", type=_sizes, default=(4, 8, 16, 32, 64, 128),
        help="batch sizes swept at --batch-sigma, saturated",
    )  # fmt: skip
    parser.add_argument("--batch-sigma", type=float, default=0.8)
    parser.add_argument(
        "--batch-timeout", type=float, default=0.1, help="static: simulated seconds to fill"
    )
    parser.add_argument("--output-median", type=float, default=128.0, help="tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/batching"))
    parser.add_argument(
        "--quick", action="store_true", help="400 requests, 3 sigmas, 3 loads, 3 batch sizes"
    )


def run(args: argparse.Namespace) -> int:
    from proxy.bench.batching import plot, report
    from proxy.bench.batching.compare import SweepConfig, run_sweep
    from proxy.bench.batching.workload import Workload

    if args.quick:
        args.requests, args.sigmas, args.loads = 400, (0.0, 0.8, 1.25), (0.5, 1.0, math.inf)
        args.batch_sizes = (8, 32, 128)
    try:
        config = SweepConfig(
            profile=PROFILES[args.profile],
            base=Workload(requests=args.requests, output_median=args.output_median, seed=args.seed),
            sigmas=args.sigmas,
            loads=args.loads,
            batch_size=args.batch_size,
            batch_sizes=args.batch_sizes,
            batch_sigma=args.batch_sigma,
            batch_timeout=args.batch_timeout,
        )
    except ValueError as exc:
        print(f"sla-proxy batching: {exc}", file=sys.stderr)
        return 2
    sweep = run_sweep(config, progress=lambda line: print(line, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batching.md").write_text(report.markdown(sweep))
    (args.out / "batching.json").write_text(json.dumps(report.as_json(sweep), indent=1) + "\n")
    wrote = [args.out / "batching.md", args.out / "batching.json"]
    if plot.write_png(sweep, args.out / "batching.png"):
        wrote.append(args.out / "batching.png")
    else:
        print("matplotlib is not installed: no PNG (pip install '.[plot]')", file=sys.stderr)
    print("\n".join(report.conditions(sweep)))
    print("wrote " + ", ".join(str(p) for p in wrote))
    return 0
