"""The load phase: warm-up, idle CPU, probes, then the rounds of interleaved sweeps,
with /proc readings around them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.bench.suite.overhead import OverheadRow, median_rows, overhead_rows
from proxy.bench.suite.probes import ProbeResult, probe_calls, run_probe, scrape_overhead
from proxy.bench.suite.procfs import CpuPerLevel, ProcessUsage, read_proc

if TYPE_CHECKING:
    from proxy.bench.suite.config import SuiteConfig
    from proxy.bench.suite.processes import Targets
    from proxy.bench.sweep import Progress, SweepResult


@dataclass(frozen=True, slots=True)
class LoadResult:
    sweeps: list[SweepResult]  # one per round
    rounds: list[list[OverheadRow]]  # per round
    overhead: list[OverheadRow]  # median over rounds, per level
    probes: list[ProbeResult]
    processes: list[ProcessUsage]
    overhead_metric: dict[str, float]
    idle_proxy_cpu_percent: float | None  # proxy CPU while nothing is sent


async def measure(
    targets: Targets, config: SuiteConfig, progress: Callable[[Progress], None] | None = None
) -> LoadResult:
    import aiohttp

    from proxy.load.client import first_model

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        model = await first_model(session, targets.direct, 30.0)
        calls = probe_calls(model, config.probe_tokens)
        for call in calls.values():  # warm both paths (imports, connections) first
            await call(session, targets.direct)
            await call(session, targets.proxied)
        before_idle = read_proc(targets.pids["proxy"]).cpu_seconds
        await asyncio.sleep(config.idle_seconds)  # a measurement interval, not a wait
        idle_cpu = read_proc(targets.pids["proxy"]).cpu_seconds - before_idle
        idle = {role: read_proc(pid) for role, pid in targets.pids.items()}
        probes = [
            await run_probe(session, name, call, targets.direct, targets.proxied, config.probes)
            for name, call in calls.items()
        ]
        sweeps, rounds = [], []
        deadline = time.monotonic() + config.max_time
        for number in range(config.rounds):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Opens the proxy's upstream pool to the top level's size; its connections
            # idle out after 15 s, so this runs before every round (which starts at the
            # top level): connecting is a cold-start cost, not the per-request one.
            chat = calls[next(iter(calls))]
            for url in (targets.direct, targets.proxied):
                await asyncio.gather(*(chat(session, url) for _ in range(max(config.levels))))
            sweep, rows = await _round(targets, config, number, remaining, progress)
            sweeps.append(sweep)
            rounds.append(rows)
        after = {role: read_proc(pid) for role, pid in targets.pids.items()}
        metric = await scrape_overhead(session, targets.admin)
    extra = sum(p.count for p in probes) + len(sweeps) * max(config.levels)
    proxied = sum(s.requests + s.cancelled for w in sweeps for s in w.for_endpoint("proxied"))
    both = sum(s.requests + s.cancelled for w in sweeps for s in w.levels)
    handled = {"proxy": extra + proxied, "simulator": 2 * extra + both}
    handled["load generator"] = handled["simulator"]
    processes = [
        ProcessUsage(role, pid, idle[role], after[role], handled[role])
        for role, pid in targets.pids.items()
    ]
    idle_percent = 100 * idle_cpu / config.idle_seconds if config.idle_seconds else None
    return LoadResult(sweeps, rounds, median_rows(rounds), probes, processes, metric, idle_percent)


async def _round(
    targets: Targets,
    config: SuiteConfig,
    number: int,
    remaining: float,
    progress: Callable[[Progress], None] | None,
) -> tuple[SweepResult, list[OverheadRow]]:
    """One sweep over every level, top level first; odd rounds start each level pair
    with the proxied endpoint, so neither side always runs first."""
    from proxy.bench.sweep import Endpoint, SweepConfig, run_sweep
    from proxy.load.prompts import OutputLength

    per_level = CpuPerLevel(targets.pids)

    def on_progress(event: Progress) -> None:
        per_level(event)
        if progress is not None:
            progress(event)

    endpoints = (Endpoint("direct", targets.direct), Endpoint("proxied", targets.proxied))
    sweep_config = SweepConfig(
        endpoints=endpoints if number % 2 == 0 else endpoints[::-1],
        levels=tuple(float(level) for level in sorted(config.levels, reverse=True)),
        requests=config.requests,
        output_len=OutputLength(config.max_tokens),
        ignore_eos=True,
        seed=number,
        max_total_seconds=remaining,
    )
    sweep = await run_sweep(sweep_config, progress=on_progress)
    return sweep, overhead_rows(sweep, per_level.spent)
