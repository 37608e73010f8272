"""The comparison as one PNG: where continuous batching wins (ratio against spread,
load and batch size) and, at one spread, both modes side by side against load.

matplotlib is optional (`pip install .[plot]`); `write_png` returns False without it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.bench.batching.compare import Sweep, load_label
from proxy.bench.batching.simulate import ModeResult

COLORS = {"continuous": "C0", "static": "C3"}


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_png(sweep: Sweep, path: Path) -> bool:
    if not available():
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    cfg = sweep.config
    fig, axes = plt.subplots(2, 3, figsize=(16, 9), constrained_layout=True)
    (ax_sigma, ax_batch, ax_tput), (ax_ttft, ax_tpot, ax_util) = axes

    for ax in (ax_sigma, ax_batch):
        ax.axhspan(2, 4, color="0.9", label='the lab\'s "2-4x"')
        ax.axhline(1, color="0.5", lw=0.8)
        ax.set_ylabel("throughput, continuous / static")
    for number, load in enumerate(cfg.loads):
        ratios = [sweep.cell(s, load).ratio for s in cfg.sigmas]
        ax_sigma.plot(
            cfg.sigmas, ratios, marker="o", color=f"C{number}", label=f"load {load_label(load)}"
        )
    ax_sigma.set_xlabel("output-length sigma (lognormal; 0 = equal lengths)")
    ax_sigma.set_title(f"batch {cfg.batch_size}: the gain needs spread and load")
    ax_sigma.legend(fontsize=8)

    sizes = [c.batch_size for c in sweep.by_batch]
    ax_batch.plot(sizes, [c.ratio for c in sweep.by_batch], marker="o", color="C4")
    ax_batch.set_xscale("log", base=2)
    ax_batch.set_xticks(sizes, [str(n) for n in sizes])
    ax_batch.set_xlabel("batch size (slots)")
    ax_batch.set_title(
        f"sigma {cfg.batch_sigma:g}, saturated: a bigger batch waits for a longer longest"
    )
    ax_batch.legend(fontsize=8)

    sigma = cfg.batch_sigma if cfg.batch_sigma in cfg.sigmas else cfg.sigmas[-1]
    cells = [sweep.cell(sigma, load) for load in cfg.loads]
    x = list(range(len(cells)))
    labels = [load_label(c.load) for c in cells]

    def side_by_side(
        ax: Any, value: Callable[[ModeResult], float], ylabel: str, title: str
    ) -> None:
        for mode in ("continuous", "static"):
            results: list[ModeResult] = [getattr(c, mode) for c in cells]
            ax.plot(x, [value(r) for r in results], marker="o", color=COLORS[mode], label=mode)
        ax.set_xticks(x, labels)
        ax.set_xlabel("load (fraction of continuous capacity)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title} (sigma {sigma:g}, batch {cfg.batch_size})")
        ax.legend(fontsize=8)

    side_by_side(ax_tput, lambda r: r.tokens_per_s, "output tokens/s", "throughput")
    side_by_side(ax_ttft, lambda r: r.pct("ttft", 90), "TTFT P90 (s)", "time to first token")
    ax_ttft.set_yscale("log")
    side_by_side(
        ax_tpot, lambda r: r.pct("tpot", 90) * 1000, "TPOT P90 (ms)", "time per output token"
    )
    side_by_side(ax_util, lambda r: r.utilisation * 100, "% of slots doing work", "slot use")
    ax_util.set_ylim(0, 105)
    fig.suptitle(
        f"Static vs continuous batching on the simulator ({cfg.profile.name}), "
        f"{sweep.base_workload.requests} requests per run, "
        f"lognormal outputs (median {sweep.base_workload.output_median:g} tokens)"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
