"""How a micro-benchmark is timed: target and baseline interleaved, ratios per
repeat, medians; and the event loop the timed asyncio code runs on."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MicroResult:
    name: str
    target: str  # what is measured
    baseline: str  # the plainest code doing the same job
    unit: str  # one operation
    ops: int  # operations per repeat
    repeats: int
    target_ns: float  # median per operation
    baseline_ns: float
    ratio: float  # median over repeats of target / baseline time
    ratio_min: float
    ratio_max: float


Timed = Callable[[], float]  # runs the operations once, returns the seconds they took


def compare(
    name: str,
    target: tuple[str, Timed],
    baseline: tuple[str, Timed],
    unit: str,
    ops: int,
    repeats: int,
) -> MicroResult:
    """Interleaves target and baseline (order alternating per repeat, after one warm-up
    each) with the garbage collector off, as timeit does."""
    target[1](), baseline[1]()
    times: tuple[list[float], list[float]] = ([], [])
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(repeats):
            order = (0, 1) if index % 2 == 0 else (1, 0)
            for which in order:
                times[which].append((target, baseline)[which][1]())
    finally:
        if was_enabled:
            gc.enable()
    ratios = [t / b for t, b in zip(*times, strict=True)]
    return MicroResult(
        name,
        target[0],
        baseline[0],
        unit,
        ops,
        repeats,
        1e9 * statistics.median(times[0]) / ops,
        1e9 * statistics.median(times[1]) / ops,
        statistics.median(ratios),
        min(ratios),
        max(ratios),
    )


def timed(work: Callable[[], object]) -> Timed:
    def run() -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    return run


def event_loop_runner() -> asyncio.Runner:
    """uvloop when installed: the loop the proxy itself runs on."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on platforms without it
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
