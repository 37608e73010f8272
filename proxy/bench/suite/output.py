"""The run's files: bench.json, bench.md, bench.png and the first round's sweep.png."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from proxy.bench.suite.figure import write_png
from proxy.bench.suite.markdown_report import markdown

if TYPE_CHECKING:
    from pathlib import Path

    from proxy.bench.suite.result import SuiteResult


def to_dict(result: SuiteResult) -> dict[str, Any]:
    from proxy.bench import report

    load = result.load
    return {
        "command": result.command,
        "config": asdict(result.config),
        "machine": result.machine,
        "duration": result.duration,
        "overhead": [asdict(r) for r in load.overhead],
        "probes": [
            asdict(p) | {"added_p50_ms": p.added_p50_ms, "e2e_p50_ratio": p.e2e_p50_ratio}
            for p in load.probes
        ],
        "processes": [
            asdict(u) | {"cpu_seconds": u.cpu_seconds, "cpu_seconds_per_1k": u.cpu_per_1k}
            for u in load.processes
        ],
        "idle_proxy_cpu_percent": load.idle_proxy_cpu_percent,
        "proxy_overhead_seconds": load.overhead_metric,
        "micro": [asdict(m) for m in result.micro],
        "rounds": [[asdict(row) for row in rows] for rows in load.rounds],
        "sweeps": [report.to_dict(sweep) for sweep in load.sweeps],
        "notes": result.notes,
    }


def write_outputs(result: SuiteResult, out: Path) -> list[Path]:
    from proxy.bench import plot

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "bench.json", out / "bench.md"]
    written[0].write_text(json.dumps(to_dict(result), indent=2) + "\n", encoding="utf-8")
    written[1].write_text(markdown(result), encoding="utf-8")
    if write_png(result, out / "bench.png"):
        written.append(out / "bench.png")
    sweeps = result.load.sweeps
    if sweeps and plot.write_png(sweeps[0], out / "sweep.png"):
        written.append(out / "sweep.png")
    return written
