"""A scenario run as one PNG: limit, in-flight and queue over time, each targeted
signal's P90 against its target, and what happened to the arrivals.

matplotlib is optional (`pip install .[plot]`): `available()` says whether it is
there, and the caller reports its absence once and writes the JSON anyway.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from proxy.scenarios.harness import RunResult
from proxy.scenarios.metrics import limit_series, rolling_percentile

# Trailing seconds each plotted P90 covers: long enough for ~hundreds of requests.
P90_SPAN = 5.0
BIN = 5.0  # seconds per bar of the arrivals panel


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_timeline(
    result: RunResult,
    path: Path,
    title: str,
    *,
    references: Mapping[str, float] | None = None,
    markers: Sequence[tuple[float, str]] = (),
) -> bool:
    """`references`: horizontal lines on the limit panel (label -> limit);
    `markers`: vertical lines on every panel (time, label). False: no matplotlib."""
    if not available():
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    settings = result.config.settings
    targets = settings.sla_targets() if settings is not None else {}
    signals = [s for s in ("ttft", "tpot", "e2e") if s in targets]
    fig, axes = plt.subplots(
        2 + len(signals),
        1,
        figsize=(11, 3.0 * (2 + len(signals))),
        sharex=True,
        constrained_layout=True,
    )
    ax_limit, *ax_signals, ax_arrivals = axes
    _limits(ax_limit, result, references or {})
    duration = result.config.load.duration
    times = [i * 1.0 for i in range(1, int(duration) + 1)]
    for ax, signal in zip(ax_signals, signals, strict=True):
        target = targets[signal]
        client = rolling_percentile(result.requests, signal, times, P90_SPAN)
        ax.plot(times, _scaled(client, signal), label=f"{signal} P90 (client)")
        if signal in ("ttft", "e2e"):
            upstream = rolling_percentile(result.requests, signal, times, P90_SPAN, client=False)
            ax.plot(times, _scaled(upstream, signal), label=f"{signal} P90 (upstream)", alpha=0.7)
        ax.axhline(_unit(signal) * target, color="red", linestyle="--", label="target")
        ax.set_ylabel(f"{signal} ({'ms' if signal == 'tpot' else 's'})")
        ax.set_ylim(0, _unit(signal) * target * 3)
        ax.legend(loc="upper right", fontsize="small")
    _arrivals(ax_arrivals, result, targets)
    for ax in axes:
        for t, label in markers:
            ax.axvline(t, color="grey", linestyle=":")
            ax.text(t, ax.get_ylim()[1], f" {label}", va="top", fontsize="small")
        ax.grid(alpha=0.3)
    ax_arrivals.set_xlabel(f"simulated seconds (P90 over trailing {P90_SPAN:g} s of completions)")
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _unit(signal: str) -> float:
    return 1000.0 if signal == "tpot" else 1.0


def _scaled(values: Sequence[float | None], signal: str) -> list[float]:
    unit = _unit(signal)
    return [float("nan") if v is None else v * unit for v in values]


def _limits(ax: Any, result: RunResult, references: Mapping[str, float]) -> None:
    ticks = result.ticks
    replicas = result.config.replicas
    if ticks:
        if replicas > 1:
            for index in range(replicas):
                own = [(t.t, t.limit) for t in ticks if t.replica == index]
                ax.step(*zip(*own, strict=True), where="post", label=f"limit replica {index}")
        total = limit_series(ticks)
        label = "limit (sum)" if replicas > 1 else "limit"
        ax.step(*zip(*total, strict=True), where="post", label=label, color="black")
        inflight: dict[float, int] = {}
        queued: dict[float, int] = {}
        for tick in ticks:
            inflight[tick.t] = inflight.get(tick.t, 0) + tick.inflight
            queued[tick.t] = queued.get(tick.t, 0) + tick.queued
        ax.plot(list(inflight), list(inflight.values()), label="in flight", alpha=0.6)
        ax.plot(list(queued), list(queued.values()), label="queued", alpha=0.6)
    engine = result.engine
    ax.plot([e.t for e in engine], [e.running for e in engine], label="engine running", alpha=0.5)
    for label, value in references.items():
        ax.axhline(value, linestyle="--", color="green", label=label)
    ax.set_ylabel("requests")
    ax.legend(loc="upper right", fontsize="small", ncol=2)


def _arrivals(ax: Any, result: RunResult, targets: Mapping[str, float]) -> None:
    from proxy.scenarios.metrics import is_good

    bins = int(result.config.load.duration // BIN) + 1
    arrived, shed, good = [0] * bins, [0] * bins, [0] * bins
    for r in result.requests:
        i = min(bins - 1, int(r.arrival // BIN))
        arrived[i] += 1
        shed[i] += r.shed
        good[i] += is_good(r, targets)
    x = [i * BIN for i in range(bins)]
    for series, label in ((arrived, "arrivals/s"), (good, "good (met SLA)/s"), (shed, "shed/s")):
        ax.step(x, [n / BIN for n in series], where="post", label=label)
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper right", fontsize="small")


def write_bars(
    values: Mapping[str, float],
    path: Path,
    title: str,
    ylabel: str,
    *,
    fmt: str = "%.1f",
    rotation: float = 15,
    line: float | None = None,
) -> bool:
    """One bar per configuration (the goodput comparison); `line`: a reference level."""
    if not available():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(9, 0.5 * len(values)), 4), constrained_layout=True)
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color="tab:blue")
    ax.bar_label(bars, fmt=fmt, fontsize=7 if len(values) > 10 else 10)
    if line is not None:
        ax.axhline(line, color="tab:red", linestyle="--", linewidth=1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=rotation, labelsize=7 if len(values) > 10 else 10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


__all__ = ["available", "write_bars", "write_timeline"]
