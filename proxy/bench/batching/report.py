"""The comparison as markdown (tables plus where the lab's "2-4x" holds) and as JSON."""

from __future__ import annotations

import math
from typing import Any

from proxy.bench.batching.compare import SATURATED, Cell, Sweep, load_label
from proxy.bench.batching.simulate import ModeResult


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _s(seconds: float) -> str:
    return f"{seconds:.2f}"


def conditions(sweep: Sweep) -> list[str]:
    """One line per sigma: from which load on continuous batching is 2x or more."""
    lines = []
    for sigma in sweep.config.sigmas:
        row = [c for c in sweep.grid if c.sigma == sigma]
        top = max(row, key=lambda c: c.ratio)
        first = next((c for c in sorted(row, key=lambda c: c.load) if c.ratio >= 2), None)
        where = (
            f"2x or more from load {load_label(first.load)}" if first is not None else "never 2x"
        )
        lines.append(
            f"- sigma {sigma:g}: at most {top.ratio:.2f}x ({load_label(top.load)}); {where}"
        )
    return lines


def _mode_row(load: str, offered: str, r: ModeResult) -> str:
    return (
        f"| {load} | {r.mode} | {offered} | {r.tokens_per_s:,.0f} | {r.requests_per_s:.2f} | "
        f"{_s(r.pct('ttft', 50))} | {_s(r.pct('ttft', 90))} | {_s(r.pct('ttft', 99))} | "
        f"{_ms(r.pct('tpot', 50))} | {_ms(r.pct('tpot', 90))} | {_s(r.pct('e2e', 90))} | "
        f"{r.utilisation:.0%} |"
    )


def markdown(sweep: Sweep) -> str:
    cfg, base = sweep.config, sweep.base_workload
    out = [
        "# Static vs continuous batching, measured on the simulator",
        "",
        f"Profile `{cfg.profile.name}`; {base.requests} requests per run, the same requests "
        "for both modes. Output lengths lognormal: median "
        f"{base.output_median:g} tokens, sigma swept (0 = all equal), clipped to "
        f"[1, {base.output_max}]. Prompts lognormal, median {base.prompt_median:g} tokens, "
        f"sigma {base.prompt_sigma:g}. Static batches start when full or after "
        f"{cfg.batch_timeout:g} s; continuous batching gets the same number of slots "
        "(`max_num_seqs` = batch size). Load is the offered rate as a fraction of the "
        "continuous engine's own capacity (Poisson arrivals); saturated = every request "
        f"queued at t=0. Seed {base.seed}; simulated time, exact and repeatable.",
        "",
        f"## Throughput ratio, continuous / static (output tokens/s), batch {cfg.batch_size}",
        "",
        "| sigma | " + " | ".join(f"load {load_label(x)}" for x in cfg.loads) + " |",
        "|---|" + "---|" * len(cfg.loads),
    ]
    for sigma in cfg.sigmas:
        ratios = " | ".join(f"{sweep.cell(sigma, x).ratio:.2f}x" for x in cfg.loads)
        out.append(f"| {sigma:g} | {ratios} |")
    out += ["", 'Where the lab\'s "2-4x higher throughput" holds:', "", *conditions(sweep)]
    out += [
        "",
        f"## Batch size (sigma {cfg.batch_sigma:g}, saturated)",
        "",
        "| batch | continuous tok/s | static tok/s | ratio | slot use, continuous | "
        "slot use, static | TTFT p90 continuous (s) | TTFT p90 static (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in sweep.by_batch:
        out.append(
            f"| {c.batch_size} | {c.continuous.tokens_per_s:,.0f} | {c.static.tokens_per_s:,.0f} "
            f"| {c.ratio:.2f}x | {c.continuous.utilisation:.0%} | {c.static.utilisation:.0%} | "
            f"{_s(c.continuous.pct('ttft', 90))} | {_s(c.static.pct('ttft', 90))} |"
        )
    sigma = cfg.batch_sigma if cfg.batch_sigma in cfg.sigmas else cfg.sigmas[-1]
    out += [
        "",
        f"## Side by side at sigma {sigma:g}, batch {cfg.batch_size}",
        "",
        "| load | mode | offered req/s | tok/s | req/s | TTFT p50 (s) | TTFT p90 (s) | "
        "TTFT p99 (s) | TPOT p50 (ms) | TPOT p90 (ms) | E2E p90 (s) | slot use |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load in cfg.loads:
        c = sweep.cell(sigma, load)
        offered = "all at t=0" if c.offered is None else f"{c.offered:.2f}"
        for r in (c.continuous, c.static):
            out.append(_mode_row(load_label(load), offered, r))
    out += [
        "",
        "Slot use: the time-weighted fraction of the batch's slots holding a sequence that "
        "still prefills or decodes, while the engine computes. A static slot whose sequence "
        "finished early stays idle until the whole batch is done. The engine skips finished "
        "sequences' compute (no padding), which is generous to static batching.",
        "",
    ]
    return "\n".join(out)


def _mode(r: ModeResult) -> dict[str, Any]:
    return {
        "tokens_per_s": r.tokens_per_s,
        "requests_per_s": r.requests_per_s,
        "utilisation": r.utilisation,
        "batches": r.batches,
        **{f"{s}_p{q}": r.pct(s, q) for s in ("ttft", "tpot", "e2e") for q in (50, 90, 99)},
    }


def _cell(c: Cell) -> dict[str, Any]:
    return {
        "sigma": c.sigma,
        "load": None if c.load == SATURATED else c.load,
        "batch_size": c.batch_size,
        "offered_rps": c.offered,
        "ratio": c.ratio if math.isfinite(c.ratio) else None,
        "continuous": _mode(c.continuous),
        "static": _mode(c.static),
    }


def as_json(sweep: Sweep) -> dict[str, Any]:
    return {
        "profile": sweep.config.profile.name,
        "batch_timeout": sweep.config.batch_timeout,
        "workload": {
            k: getattr(sweep.base_workload, k)
            for k in ("requests", "output_median", "output_max", "prompt_median", "seed")
        },
        "grid": [_cell(c) for c in sweep.grid],
        "by_batch": [_cell(c) for c in sweep.by_batch],
    }
