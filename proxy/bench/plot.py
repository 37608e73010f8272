"""The sweep as one PNG: the lab's three panels (req/s, output tokens/s, latency
P50/P90 against load) plus goodput; both endpoints on the same axes when comparing.

matplotlib is an optional extra (`pip install .[plot]`); `write_png` returns False
when it is missing so the caller can say so once and carry on.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from proxy.bench.sweep import SweepResult


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_png(result: SweepResult, path: Path) -> bool:
    if not available():
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    concurrency = result.config.mode == "concurrency"
    xlabel = "concurrency" if concurrency else "offered rate (req/s)"
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    (ax_req, ax_tok), (ax_lat, ax_good) = axes
    for number, endpoint in enumerate(result.config.endpoints):
        rows = result.for_endpoint(endpoint.name)
        if not rows:
            continue
        # One colour per endpoint across all panels, so the eye can follow it.
        color = f"C{number}"
        x = [s.level for s in rows]
        name = endpoint.name
        ax_req.plot(x, [s.req_per_s for s in rows], marker="o", color=color, label=name)
        ax_tok.plot(x, [s.output_tok_per_s for s in rows], marker="o", color=color, label=name)
        for attr, style in (("p50", "-"), ("p90", "--")):
            points = [(s.level, getattr(s.e2e, attr)) for s in rows if s.e2e is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                label = f"{name} e2e {attr.upper()}"
                ax_lat.plot(xs, ys, style, marker="o", color=color, label=label)
        good = [(s.level, s.goodput) for s in rows if s.goodput is not None]
        if good:
            xs, ys = zip(*good, strict=True)
            ax_good.plot(xs, ys, marker="o", color=color, label=f"{name} goodput")
        else:
            ax_good.plot(x, [s.req_per_s for s in rows], ":", color=color, label=f"{name} req/s")
        saturation = result.saturation.get(name)
        if saturation is not None and saturation.level is not None:
            for ax in (ax_req, ax_tok, ax_lat, ax_good):
                ax.axvline(saturation.level, color=color, linestyle=":", linewidth=1)
    slo = result.config.slo.describe()
    titles = (
        (ax_req, "requests/s", "req/s"),
        (ax_tok, "output tokens/s", "tokens/s"),
        (ax_lat, "end-to-end latency P50 (solid) / P90 (dashed)", "seconds"),
        (ax_good, f"goodput (SLO: {slo})", "good req/s"),
    )
    fig.suptitle("load sweep (dotted lines: saturation point)")
    for ax, title, ylabel in titles:
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if concurrency:
            ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
