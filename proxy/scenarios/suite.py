"""The battery as one report: every generated case judged against its own oracle, in
parallel processes (each case is deterministic), one row a case and a summary."""

from __future__ import annotations

import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from proxy.scenarios.battery import generate
from proxy.scenarios.context import Check, Context, Report
from proxy.scenarios.judge import CASE_RATIO, P90_ALLOWANCE, CaseResult, judge

BATTERY_CASES = 24
MEDIAN_RATIO = 0.95  # the median case, against its oracle (issue 9)


def run_cases(ctx: Context, count: int) -> list[CaseResult]:
    cases = [replace(c, scale=ctx.scale) for c in generate(ctx.seed, count)]
    if ctx.jobs <= 1:
        return [judge(c) for c in cases]
    with ProcessPoolExecutor(max_workers=ctx.jobs) as pool:
        return list(pool.map(judge, cases))


def battery(ctx: Context, count: int = BATTERY_CASES) -> Report:
    results = run_cases(ctx, count)
    ratios = [r.ratio for r in results]
    worst = max(results, key=lambda r: r.worst_p90)
    report = Report(
        "battery",
        f"{len(results)} generated cases, each judged against its own oracle",
        {
            "generator": f"proxy.scenarios.battery.generate(seed={ctx.seed}, count={count})",
            "adaptive runs": "the defaults, with only the case's SLA set",
            "oracle": "the best of fixed limits on a grid around the measured knee, and no proxy",
            "judged": "client side: queue wait included, goodput = requests within every target",
        },
        rows=[r.row() for r in results],
    )
    passing = [r for r in results if r.passed]
    report.checks = [
        Check(
            f"every case >= {CASE_RATIO:.2f} of its oracle, client P90 <= {P90_ALLOWANCE} x "
            "target (or x the oracle's, where the oracle misses it too)",
            f"{len(passing)} of {len(results)} cases",
            len(passing) == len(results),
        ),
        Check(
            "never fewer good requests than no proxy (within 2 Poisson sd of its count)",
            f"{sum(r.beats_no_proxy for r in results)} of {len(results)} cases",
            all(r.beats_no_proxy for r in results),
        ),
        Check(
            f"median goodput ratio >= {MEDIAN_RATIO:.2f}",
            f"{statistics.median(ratios):.3f} (min {min(ratios):.3f})",
            statistics.median(ratios) >= MEDIAN_RATIO,
        ),
    ]
    report.notes.append(
        f"Worst client P90 over its target: {worst.worst_p90:.3f} in {worst.case.name}. "
        "Failing cases: " + (", ".join(r.case.name for r in results if not r.passed) or "none")
    )
    if _bars(results, ctx.out / "battery.png"):
        report.figures.append("battery.png")
    return report


def _bars(results: list[CaseResult], path: Path) -> bool:
    from proxy.scenarios.plot import write_bars

    values = {r.case.name: r.ratio for r in results}
    title = "battery: adaptive goodput / the best static choice's (fixed limits, no proxy)"
    return write_bars(values, path, title, "ratio", fmt="%.2f", rotation=60, line=CASE_RATIO)
