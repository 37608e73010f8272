"""`sla-proxy scenario NAME|battery|all --out DIR`: the admission-control scenarios.

Each runs the real admission objects in front of the simulator's engine on a
virtual clock (`proxy.scenarios.harness`), prints a table and its goals, and writes
NAME.md, NAME.json and NAME.png (plus extras) to DIR. The hand-written scenarios are
in `proxy.scenarios.defs` and `proxy.scenarios.pools` (a pool of engines); the
generated battery in `battery`, `judge` and `suite`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from proxy.scenarios import defs, pools
from proxy.scenarios.context import CAPACITY_AT_SLA, Context, default_jobs
from proxy.scenarios.plot import available
from proxy.scenarios.suite import BATTERY_CASES, battery

# The classics and the pool scenarios: what `all` runs before the battery.
SCENARIOS = {**defs.SCENARIOS, **pools.SCENARIOS}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        choices=[*SCENARIOS, "battery", "all"],
        help="a hand-written scenario, the generated battery, or all of them",
    )
    parser.add_argument("--out", type=Path, default=Path("out/scenarios"), help="output folder")
    parser.add_argument("--profile", default="h100-llama3-8b", help="simulator profile")
    parser.add_argument(
        "--capacity",
        type=float,
        default=None,
        help="goodput at the SLA, req/s (default: measured for the profile); "
        "scenarios offer twice this",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the runs and of the battery")
    parser.add_argument(
        "--cases", type=int, default=BATTERY_CASES, help="generated cases in the battery"
    )
    parser.add_argument(
        "--jobs", type=int, default=default_jobs(), help="runs in parallel processes"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every duration (0.25: a quick smoke run)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="proxy setting for the adaptive runs, e.g. --set increase_step=4",
    )


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    from proxy.settings import Settings

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in Settings.model_fields:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with a settings field")
        out[key] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from proxy.sim.profiles import get_profile

    try:
        profile = get_profile(args.profile)
        overrides = _parse_overrides(args.overrides)
        capacity = args.capacity or CAPACITY_AT_SLA.get(profile.name)
        if capacity is None:
            raise ValueError(f"no measured capacity for {profile.name}: give --capacity")
        ctx = Context(profile, capacity, overrides, args.out, args.seed, args.jobs, args.scale)
        ctx.settings()  # validate before minutes of running
    except (ValueError, ValidationError) as exc:
        print(f"sla-proxy scenario: {exc}", file=sys.stderr)
        return 2
    if not available():
        print("matplotlib is not installed: writing tables and JSON, no PNGs", file=sys.stderr)
    names = [*SCENARIOS, "battery"] if args.name == "all" else [args.name]
    failed = []
    for name in names:
        report = battery(ctx, args.cases) if name == "battery" else SCENARIOS[name](ctx)
        report.write(args.out)
        print(report.markdown(), flush=True)
        if not report.passed:
            failed.append(name)
    if failed:
        print(f"goals missed in: {', '.join(failed)} (see the tables)", file=sys.stderr)
    return 1 if failed and args.strict else 0


__all__ = ["SCENARIOS", "configure", "run"]
