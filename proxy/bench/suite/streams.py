"""Issue 12 part 2: many paced streams (one event per token, its own write, every
20 ms) straight from the paced upstream, through the bare passthrough and through
sla-proxy. What the proxy adds to each event's trip (client arrival minus upstream
write, one clock), and its CPU per relayed event, from /proc.

The proxies run alone on the servers' CPU; the paced upstream and the client share
the other one, so the proxy's own cost is what differs between the paths."""

from __future__ import annotations

import asyncio
import statistics
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.bench.suite.meter import CpuMeter, Reading
from proxy.bench.suite.paced_client import run_streams
from proxy.bench.suite.servers import bare, paced, sla_options, sla_proxy
from proxy.core.stats import percentile

if TYPE_CHECKING:
    from proxy.bench.suite.refconfig import RefConfig

PATHS = ("direct", "bare aiohttp", "sla-proxy")


@dataclass(frozen=True, slots=True)
class PacedRun:
    round: int
    path: str
    streams: int  # whole answers received
    events: int  # content events received
    timed: int  # of those, written inside the timed window
    failures: int
    p50_ms: float | None  # event delay: client arrival minus upstream write
    p99_ms: float | None
    proxy_cpu_us_per_event: float | None  # None for direct
    proxy_cores: float | None  # the proxy's CPU over the run's wall time
    others_cores: float


@dataclass(frozen=True, slots=True)
class PacedRow:
    path: str
    p50_ms: float | None  # medians over rounds
    p99_ms: float | None
    added_p50_ms: float | None  # this path minus direct, per round, median
    added_p99_ms: float | None
    proxy_cpu_us_per_event: float | None
    proxy_cores: float | None
    events: int  # all rounds
    failures: int
    others_cores_max: float


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def paced_rows(runs: list[PacedRun]) -> list[PacedRow]:
    direct = {r.round: r for r in runs if r.path == "direct"}
    found = []
    for path in PATHS:
        mine = [r for r in runs if r.path == path]
        if not mine:
            continue
        added: dict[str, list[float | None]] = {"p50_ms": [], "p99_ms": []}
        for run in mine:
            base = direct.get(run.round)
            for name, values in added.items():
                mine_value, base_value = getattr(run, name), getattr(base, name, None)
                ok = mine_value is not None and base_value is not None
                values.append(mine_value - base_value if ok else None)
        found.append(
            PacedRow(
                path,
                _median([r.p50_ms for r in mine]),
                _median([r.p99_ms for r in mine]),
                _median(added["p50_ms"]),
                _median(added["p99_ms"]),
                _median([r.proxy_cpu_us_per_event for r in mine]),
                _median([r.proxy_cores for r in mine]),
                sum(r.events for r in mine),
                sum(r.failures for r in mine),
                max(r.others_cores for r in mine),
            )
        )
    return found


async def measure_paced(
    config: RefConfig, logs: str, cpus: tuple[int | None, ...]
) -> list[PacedRun]:
    server_cpu, client_cpu = cpus
    limit = max(config.sla_limit, config.paced_streams)
    async with AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(
            paced("paced-upstream", logs, client_cpu, config.paced_interval)
        )
        passthrough = await stack.enter_async_context(
            bare("bare-paced", upstream.url, logs, server_cpu)
        )
        proxy = await stack.enter_async_context(
            sla_proxy("sla-proxy-paced", upstream.url, sla_options(limit), logs, server_cpu)
        )
        ports = {"direct": upstream.port, "bare aiohttp": passthrough.port}
        ports["sla-proxy"] = proxy.port
        pids = {"bare aiohttp": passthrough.pid, "sla-proxy": proxy.pid}
        meter = CpuMeter(pids | {"upstream": upstream.pid})
        for path in PATHS:  # warms every path: connections, pools, imports
            await run_streams(ports[path], config.paced_streams, 4, config.paced_interval, 0.2, 0)
        runs = []
        for number in range(config.rounds):
            for path in PATHS if number % 2 == 0 else PATHS[::-1]:
                runs.append(await _run(config, meter, number, path, ports[path]))
    return runs


async def _run(config: RefConfig, meter: CpuMeter, number: int, path: str, port: int) -> PacedRun:
    """CPU is read at the timed window's edges (timer callbacks), so the ramp-up and
    the streams finishing after the deadline do not dilute it."""
    loop = asyncio.get_running_loop()
    marks: list[Reading] = []
    for at in (config.paced_warmup, config.paced_warmup + config.paced_seconds):
        loop.call_later(at, lambda: marks.append(meter.read()))
    tally = await run_streams(
        port,
        config.paced_streams,
        config.paced_tokens,
        config.paced_interval,
        config.paced_seconds,
        config.paced_warmup,
    )
    spent = CpuMeter.spent(marks[0], marks[1])
    delays = list(tally.delays)
    cpu = spent.servers.get(path)
    return PacedRun(
        number,
        path,
        tally.streams,
        tally.events,
        len(delays),
        tally.failures,
        1000 * percentile(delays, 0.5) if delays else None,  # type: ignore[operator]
        1000 * percentile(delays, 0.99) if delays else None,  # type: ignore[operator]
        1e6 * cpu / len(delays) if cpu is not None and delays else None,
        cpu / spent.wall if cpu is not None and spent.wall > 0 else None,
        spent.others_cores,
    )
