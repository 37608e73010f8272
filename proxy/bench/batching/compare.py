"""The comparison: both modes on the same requests, over spread, load and batch size.

A cell is (output-length sigma, load, batch size N). Load is stated relative to the
continuous engine's own capacity for that sigma and N (its throughput in requests/s
with every request queued at t=0): load 0.5 offers half of what continuous batching
can serve, and `SATURATED` queues everything at once. Static batching's capacity is
lower, so a load below 1 may already overload it; the sweep shows where that happens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from proxy.bench.batching.simulate import ModeResult, simulate
from proxy.bench.batching.workload import Workload
from proxy.sim.batching import CONTINUOUS, StaticBatching
from proxy.sim.profiles import Profile

SATURATED = math.inf  # a load: every request queued at t=0


@dataclass(frozen=True, slots=True)
class Cell:
    sigma: float
    load: float  # offered / continuous capacity; SATURATED: all at once
    batch_size: int
    offered: float | None  # requests per second (None: saturated)
    continuous: ModeResult
    static: ModeResult

    @property
    def ratio(self) -> float:
        """Continuous over static throughput (output tokens per second)."""
        s = self.static.tokens_per_s
        return self.continuous.tokens_per_s / s if s > 0 else math.inf


@dataclass(frozen=True, slots=True)
class SweepConfig:
    profile: Profile
    base: Workload  # requests, median, seed, ...; sigma and rate are swept
    sigmas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.8, 1.0, 1.25)
    loads: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, SATURATED)
    batch_size: int = 32  # for the sigma x load grid
    batch_sizes: tuple[int, ...] = (4, 8, 16, 32, 64, 128)  # at `batch_sigma`, saturated
    batch_sigma: float = 0.8
    batch_timeout: float = 0.1  # simulated seconds

    def __post_init__(self) -> None:
        if not self.sigmas or not self.loads or not self.batch_sizes:
            raise ValueError("every swept list needs at least one value")
        if any(not load > 0 for load in self.loads):
            raise ValueError("loads must be positive (inf: saturated)")
        if min(self.batch_size, *self.batch_sizes) < 1:
            raise ValueError("batch sizes must be >= 1")
        if max(self.batch_size, *self.batch_sizes) > self.profile.max_num_seqs:
            raise ValueError(f"batch sizes are limited by max_num_seqs {self.profile.max_num_seqs}")


@dataclass(frozen=True, slots=True)
class Sweep:
    config: SweepConfig
    grid: tuple[Cell, ...]  # sigma x load at config.batch_size
    by_batch: tuple[Cell, ...]  # batch sizes at config.batch_sigma, saturated

    @property
    def base_workload(self) -> Workload:
        return self.config.base

    def cell(self, sigma: float, load: float) -> Cell:
        return next(c for c in self.grid if c.sigma == sigma and c.load == load)


def run_cell(config: SweepConfig, sigma: float, load: float, batch_size: int) -> Cell:
    profile, timeout = config.profile, config.batch_timeout
    saturated = replace(config.base, output_sigma=sigma, rate=None)
    jobs = saturated.jobs()
    capacity = simulate(profile, CONTINUOUS, jobs, batch_size)
    offered: float | None = None
    if math.isinf(load):
        continuous = capacity
    else:
        offered = load * capacity.requests_per_s
        jobs = replace(saturated, rate=offered).jobs()
        continuous = simulate(profile, CONTINUOUS, jobs, batch_size)
    static = simulate(profile, StaticBatching(batch_size, timeout), jobs, batch_size)
    return Cell(sigma, load, batch_size, offered, continuous, static)


def run_sweep(config: SweepConfig, progress: Callable[[str], None] | None = None) -> Sweep:
    def cells(points: Sequence[tuple[float, float, int]]) -> tuple[Cell, ...]:
        out = []
        for sigma, load, n in points:
            cell = run_cell(config, sigma, load, n)
            if progress is not None:
                progress(
                    f"sigma {sigma:g}, load {load_label(load)}, batch {n}: "
                    f"continuous/static throughput {cell.ratio:.2f}x"
                )
            out.append(cell)
        return tuple(out)

    grid = cells([(s, load, config.batch_size) for s in config.sigmas for load in config.loads])
    by_batch = cells([(config.batch_sigma, SATURATED, n) for n in config.batch_sizes])
    return Sweep(config, grid, by_batch)


def load_label(load: float) -> str:
    return "saturated" if math.isinf(load) else f"{load:g}"
