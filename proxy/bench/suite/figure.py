"""The run as one PNG: TTFT direct and proxied, the TTFT the proxy adds, the
proxied-over-direct ratios and the micro-benchmark ratios."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from proxy.bench.suite.result import SuiteResult


def write_png(result: SuiteResult, path: Path) -> bool:
    from proxy.bench import plot

    if not plot.available():
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    rows = result.load.overhead
    x = [r.level for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    (ax_ttft, ax_added), (ax_ratio, ax_micro) = axes
    for attr, style in (("p50", "-"), ("p90", "--")):
        for number, who in enumerate(("direct", "proxied")):
            ys = [getattr(r, f"ttft_{attr}_{who}") for r in rows]
            ax_ttft.plot(
                x,
                [1000 * y if y is not None else None for y in ys],
                style,
                marker="o",
                color=f"C{number}",
                label=f"{who} TTFT {attr.upper()}",
            )
        added = [getattr(r, f"ttft_{attr}_added_ms") for r in rows]
        ax_added.plot(x, added, style, marker="o", color="C2", label=f"TTFT {attr.upper()}")
    ax_added.axhline(0, color="grey", linewidth=1)
    ax_ratio.plot(x, [r.throughput_ratio for r in rows], marker="o", label="req/s proxied/direct")
    ax_ratio.plot(x, [r.e2e_p50_ratio for r in rows], marker="s", label="e2e P50 proxied/direct")
    ax_ratio.axhline(1, color="grey", linewidth=1)
    micro = result.micro
    ax_micro.barh([m.name for m in micro], [m.ratio for m in micro], color="C3")
    ax_micro.axvline(1, color="grey", linewidth=1)
    for ax, title, ylabel in (
        (ax_ttft, "time to first token", "ms"),
        (ax_added, "TTFT added by the proxy", "ms"),
        (ax_ratio, "proxied over direct (1 = no cost)", "ratio"),
    ):
        ax.set_title(title)
        ax.set_xlabel("concurrency")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    ax_micro.set_title("hot paths: time over the plain baseline (median)")
    ax_micro.set_xlabel("ratio")
    ax_micro.grid(True, axis="x", alpha=0.3)
    fig.suptitle(f"sla-proxy overhead ({result.machine['cpus']} CPUs, shared machine)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
