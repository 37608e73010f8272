"""Where more load stops buying throughput (pure).

The saturation point is the first level after which throughput grows by less than
`min_gain` (10 %) while P90 latency keeps rising: past it, extra concurrency only
queues. A level whose next step still gains throughput, or whose latency did not
rise, is not the knee — noise that flattens throughput for one step without any
latency cost is not saturation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Saturation:
    level: float | None  # None: not reached within the sweep
    index: int | None
    reason: str  # one sentence saying what was seen


def find_saturation(
    levels: Sequence[float],
    throughput: Sequence[float],
    latency_p90: Sequence[float | None],
    min_gain: float = 0.10,
) -> Saturation:
    if not len(levels) == len(throughput) == len(latency_p90):
        raise ValueError("levels, throughput and latency must have the same length")
    for i in range(len(levels) - 1):
        now, after = throughput[i], throughput[i + 1]
        lat_now, lat_after = latency_p90[i], latency_p90[i + 1]
        if now <= 0 or lat_now is None or lat_after is None:
            continue
        gain = after / now - 1
        if gain < min_gain and lat_after > lat_now:
            return Saturation(
                levels[i],
                i,
                f"saturates at {levels[i]:g}: going to {levels[i + 1]:g} changed throughput by "
                f"{gain:+.0%} ({now:.2f} -> {after:.2f} req/s) while P90 latency rose "
                f"{lat_now:.3f} -> {lat_after:.3f} s",
            )
    return Saturation(
        None,
        None,
        "not saturated within the sweep: throughput still grows by at least "
        f"{min_gain:.0%} per step (or latency did not rise)",
    )
