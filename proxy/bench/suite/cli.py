"""The command line: options, the run in order (the simulator sweeps and the
micro-benchmarks, then the reference sections), notes on how far to trust it, and
the exit code."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.bench.suite.config import SuiteConfig
from proxy.bench.suite.load import LoadResult, measure
from proxy.bench.suite.markdown_report import markdown
from proxy.bench.suite.micro import micro_benchmarks
from proxy.bench.suite.output import write_outputs
from proxy.bench.suite.processes import ServiceError, services
from proxy.bench.suite.refcli import configure_reference, ref_config
from proxy.bench.suite.refcli import levels as _levels
from proxy.bench.suite.refconfig import RefConfig
from proxy.bench.suite.result import SuiteResult, machine_info
from proxy.bench.suite.timing import event_loop_runner

if TYPE_CHECKING:
    from proxy.bench.sweep import Progress


async def run_suite(
    config: SuiteConfig, progress: Callable[[Progress], None] | None = None
) -> tuple[dict[str, Any], LoadResult]:
    machine = machine_info()
    async with services(config) as targets:
        load = await measure(targets, config, progress)
    machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return machine, load


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = SuiteConfig()
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="(out/bench)")
    parser.add_argument(
        "--levels",
        type=_levels,
        default=defaults.levels,
        metavar="C1,C2,...",
        help="concurrency levels (1,8,32,64)",
    )
    parser.add_argument("--requests", type=int, help="per level and endpoint (max(32, 4 x C))")
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens, help="(32)")
    parser.add_argument("--profile", default=defaults.profile, help="simulator profile")
    parser.add_argument("--speed", type=float, default=defaults.speed, help="simulator speed (1)")
    parser.add_argument(
        "--probes",
        type=int,
        default=defaults.probes,
        help="non-streamed probe requests per endpoint (30)",
    )
    parser.add_argument(
        "--max-time", type=float, default=defaults.max_time, help="cap on all sweeps, s (240)"
    )
    parser.add_argument(
        "--rounds", type=int, default=defaults.rounds, help="whole sweeps, median reported (5)"
    )
    parser.add_argument(
        "--repeats", type=int, default=defaults.repeats, help="micro-benchmark repeats (7)"
    )
    parser.add_argument(
        "--micro-scale",
        type=float,
        default=defaults.micro_scale,
        help="multiplies micro-benchmark sizes (1)",
    )
    configure_reference(parser)


def _config(args: argparse.Namespace) -> SuiteConfig:
    return SuiteConfig(
        levels=args.levels,
        requests=args.requests,
        max_tokens=args.max_tokens,
        profile=args.profile,
        speed=args.speed,
        probes=args.probes,
        max_time=args.max_time,
        rounds=args.rounds,
        repeats=args.repeats,
        micro_scale=args.micro_scale,
    )


def _notes(config: SuiteConfig, load: LoadResult) -> list[str]:
    notes = []
    if len(load.sweeps) < config.rounds or any(sweep.truncated for sweep in load.sweeps):
        notes.append(f"the sweeps hit their {config.max_time:g} s cap")
    others = [r.others_cores for r in load.overhead if r.others_cores is not None]
    cpus = os.cpu_count() or 1
    if others and max(others) > cpus / 4:
        notes.append(
            f"other tenants kept up to {max(others):.1f} of {cpus} cores busy during the sweep: "
            "the proxied path needs three busy processes where the direct one needs two, so "
            "CPU contention counts against the proxy; compare runs with low others' CPU"
        )
    failed = sum(r.failed_direct + r.failed_proxied for r in load.overhead)
    failed += sum(p.failures for p in load.probes)
    if failed:
        notes.append(f"{failed} requests failed or were cut: compare the ratios with care")
    return notes


def run(args: argparse.Namespace) -> int:
    from proxy.bench.suite.tools import ensure

    try:
        config, ref = _config(args), ref_config(args)
    except ValueError as exc:
        print(f"sla-proxy bench-suite: error: {exc}", file=sys.stderr)
        return 2
    command = " ".join(["python -m proxy bench-suite", *sys.argv[2:]])
    try:  # before anything long: a missing tool should not cost a whole sweep first
        binaries = ensure() if ref.needs_tools else {}
    except ServiceError as exc:
        print(f"sla-proxy bench-suite: error: {exc}", file=sys.stderr)
        return 1
    code = _run_sweep(args, config, command) if ref.wants("sweep") else 0
    if ref.any_reference and code != 130:
        code = max(code, _run_reference(args, ref, binaries, command))
    return code


def _run_reference(
    args: argparse.Namespace, ref: RefConfig, binaries: dict[str, str], command: str
) -> int:
    import aiohttp

    from proxy.bench.suite.refreport import markdown as ref_markdown
    from proxy.bench.suite.refreport import write_reference
    from proxy.bench.suite.refrun import run_reference_sections

    print(f"reference sections: {', '.join(ref.sections)} ...", file=sys.stderr)
    try:
        with event_loop_runner() as runner:
            result = runner.run(run_reference_sections(ref, machine_info(), binaries, command))
    except (ServiceError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        print(f"sla-proxy bench-suite: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nsla-proxy bench-suite: interrupted", file=sys.stderr)
        return 130
    print(ref_markdown(result))
    written = write_reference(result, args.out)
    print(f"wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    failed = sum(r.wrk.errors for r in result.runs) + sum(r.failures for r in result.paced)
    return 1 if failed else 0


def _run_sweep(args: argparse.Namespace, config: SuiteConfig, command: str) -> int:
    """The simulator sweeps, probes and micro-benchmarks (bench.md)."""
    import aiohttp

    from proxy.bench.progress import ProgressBar
    from proxy.bench.sweep import BenchError

    started = time.perf_counter()
    bar = ProgressBar(sys.stderr)
    try:
        with event_loop_runner() as runner:
            machine, load = runner.run(run_suite(config, bar))
    except (ServiceError, BenchError, aiohttp.ClientError, OSError) as exc:
        print(f"sla-proxy bench-suite: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nsla-proxy bench-suite: interrupted", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print("micro-benchmarks ...", file=sys.stderr)
    micro = micro_benchmarks(config.repeats, config.micro_scale)
    result = SuiteResult(
        config,
        machine,
        load,
        micro,
        time.perf_counter() - started,
        command,
        _notes(config, load),
    )
    print(markdown(result))
    written = write_outputs(result, args.out)
    print(f"wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    return 0 if all(s.ok for sweep in load.sweeps for s in sweep.levels) else 1
