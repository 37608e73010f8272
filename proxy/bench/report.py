"""The sweep as a terminal table, JSON and CSV (pure formatting plus two writers)."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from proxy.bench.sweep import SweepResult
from proxy.load.stats import Dist, LevelStats

_SIGNALS = ("e2e", "ttft", "tpot", "itl")


def _ms(dist: Dist | None, attr: str) -> str:
    return f"{getattr(dist, attr) * 1000:.0f}" if dist is not None else "-"


def _ms_fine(dist: Dist | None, attr: str) -> str:
    return f"{getattr(dist, attr) * 1000:.1f}" if dist is not None else "-"


def _failures(stats: LevelStats) -> str:
    if not stats.failed:
        return "0"
    detail = " ".join(f"{key}:{count}" for key, count in stats.failures.items())
    return f"{stats.failed} ({detail})"


def table(result: SweepResult) -> str:
    """Aligned text, one row per level and endpoint; latencies in milliseconds."""
    mode = result.config.mode
    header = [
        "endpoint",
        "conc" if mode == "concurrency" else "rate",
        "ok",
        "failed",
        "req/s",
        "tok/s",
        "goodput",
        "e2e p50/p90/p99",
        "ttft p50/p90/p99",
        "tpot p50/p90/p99",
        "itl p50/p90",
    ]
    rows = [header]
    for endpoint in result.config.endpoints:
        for s in result.for_endpoint(endpoint.name):
            rows.append(
                [
                    s.endpoint,
                    f"{s.level:g}",
                    str(s.ok),
                    _failures(s) + (f" +{s.cancelled} cut" if s.cancelled else ""),
                    f"{s.req_per_s:.2f}",
                    f"{s.output_tok_per_s:.0f}",
                    f"{s.goodput:.2f}" if s.goodput is not None else "-",
                    "/".join(_ms(s.e2e, a) for a in ("p50", "p90", "p99")),
                    "/".join(_ms(s.ttft, a) for a in ("p50", "p90", "p99")),
                    "/".join(_ms_fine(s.tpot, a) for a in ("p50", "p90", "p99")),
                    "/".join(_ms_fine(s.itl, a) for a in ("p50", "p90")),
                ]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        f"latencies in ms; goodput = requests/s meeting every SLO: {result.config.slo.describe()}"
    )
    for endpoint in result.config.endpoints:
        lines.append(
            f"{endpoint.name} ({result.models.get(endpoint.name, '?')}): "
            f"{result.saturation[endpoint.name].reason}"
        )
    for ratio in result.ratios():
        second, first = (e.name for e in result.config.endpoints[::-1])
        lines.append(
            f"{second}/{first} at {ratio['level']:g}: "
            + ", ".join(f"{k} x{v:.2f}" for k, v in ratio.items() if k != "level" and v)
        )
    if result.truncated:
        lines.append(f"stopped early: total time cap of {result.config.max_total_seconds:g} s hit")
    return "\n".join(lines)


def to_dict(result: SweepResult) -> dict[str, Any]:
    config = result.config
    return {
        "mode": config.mode,
        "levels": list(config.levels),
        "requests_per_level": config.requests,
        "duration_per_level": config.duration,
        "api": config.api,
        "output_len": asdict(config.output_len),
        "ignore_eos": config.ignore_eos,
        "seed": config.seed,
        "slo_seconds": asdict(config.slo),
        "goodput_definition": "vllm bench serve --goodput: successful requests meeting every "
        "given SLO (inclusive), per second of level duration",
        "endpoints": [
            {"name": e.name, "url": e.url, "model": result.models.get(e.name)}
            for e in config.endpoints
        ],
        "results": [asdict(s) for s in result.levels],
        "saturation": {name: asdict(sat) for name, sat in result.saturation.items()},
        "ratios": result.ratios(),
        "duration": result.duration,
        "truncated": result.truncated,
    }


def write_json(result: SweepResult, path: Path) -> None:
    path.write_text(json.dumps(to_dict(result), indent=2) + "\n", encoding="utf-8")


CSV_FIELDS = (
    "endpoint",
    "mode",
    "level",
    "requests",
    "ok",
    "failed",
    "cancelled",
    "failures",
    "duration",
    "req_per_s",
    "output_tok_per_s",
    "good",
    "goodput",
    *(f"{sig}_{stat}" for sig in _SIGNALS for stat in ("mean", "p50", "p90", "p99")),
)


def csv_row(stats: LevelStats) -> dict[str, Any]:
    """Flat row; latencies in seconds (base units), failures as 'status:count;...'."""
    row: dict[str, Any] = {
        "endpoint": stats.endpoint,
        "mode": stats.mode,
        "level": stats.level,
        "requests": stats.requests,
        "ok": stats.ok,
        "failed": stats.failed,
        "cancelled": stats.cancelled,
        "failures": ";".join(f"{k}:{v}" for k, v in stats.failures.items()),
        "duration": stats.duration,
        "req_per_s": stats.req_per_s,
        "output_tok_per_s": stats.output_tok_per_s,
        "good": stats.good,
        "goodput": "" if stats.goodput is None else stats.goodput,
    }
    for signal in _SIGNALS:
        dist: Dist | None = getattr(stats, signal)
        for stat in ("mean", "p50", "p90", "p99"):
            row[f"{signal}_{stat}"] = "" if dist is None else getattr(dist, stat)
    return row


def write_csv(result: SweepResult, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for stats in result.levels:
            writer.writerow(csv_row(stats))
