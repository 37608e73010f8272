"""Issue 12's table: wrk against nginx serving a fixed answer (direct), and through
nginx as a proxy, the bare aiohttp passthrough and sla-proxy; JSON and SSE, at each
level. Servers on one CPU, wrk on the other; rounds interleave every combination,
the order of the four paths alternating per round; ratios are taken within a round
and reported as medians over rounds."""

from __future__ import annotations

import statistics
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.bench.suite.meter import CpuMeter
from proxy.bench.suite.nginx import KINDS, running_nginx
from proxy.bench.suite.payloads import request_body
from proxy.bench.suite.servers import bare, sla_options, sla_proxy
from proxy.bench.suite.wrk import WrkResult, run_wrk, write_script

if TYPE_CHECKING:
    from proxy.bench.suite.refconfig import RefConfig

TARGETS = ("direct", "nginx proxy", "bare aiohttp", "sla-proxy")
PYTHON_PROXIES = ("bare aiohttp", "sla-proxy")  # their own process: CPU per request


@dataclass(frozen=True, slots=True)
class RefRun:
    kind: str  # json or sse
    level: int
    round: int
    target: str
    wrk: WrkResult
    cpu_us_per_request: float | None  # the proxy process's, for the Python proxies
    others_cores: float


@dataclass(frozen=True, slots=True)
class RefRow:
    """One kind and level: per target, the median over rounds (and the range)."""

    kind: str
    level: int
    rate: dict[str, float]  # target -> requests (or whole streams) per second
    rate_min: dict[str, float]
    rate_max: dict[str, float]
    p50_ms: dict[str, float]
    cpu_us_per_request: dict[str, float]  # Python proxies only
    ratio: float | None  # sla-proxy / bare, median of the per-round ratios
    ratio_min: float | None
    ratio_max: float | None
    added_p50_ms: float | None  # sla-proxy p50 minus bare p50, median over rounds
    others_cores_max: float
    errors: int


def rows(runs: list[RefRun]) -> list[RefRow]:
    found: list[RefRow] = []
    for kind, level in dict.fromkeys((r.kind, r.level) for r in runs):
        mine = [r for r in runs if (r.kind, r.level) == (kind, level)]
        by: dict[str, list[RefRun]] = {t: [r for r in mine if r.target == t] for t in TARGETS}
        rate = {t: [r.wrk.rate for r in by[t]] for t in TARGETS if by[t]}
        ratios, added = [], []
        for number in sorted({r.round for r in mine}):
            pair = {r.target: r.wrk for r in mine if r.round == number}
            sla, base = pair.get("sla-proxy"), pair.get("bare aiohttp")
            if sla is not None and base is not None and base.rate > 0:
                ratios.append(sla.rate / base.rate)
                added.append(sla.p50_ms - base.p50_ms)
        cpu = {
            t: statistics.median(v)
            for t in PYTHON_PROXIES
            if (v := [r.cpu_us_per_request for r in by[t] if r.cpu_us_per_request is not None])
        }
        found.append(
            RefRow(
                kind,
                level,
                {t: statistics.median(v) for t, v in rate.items()},
                {t: min(v) for t, v in rate.items()},
                {t: max(v) for t, v in rate.items()},
                {t: statistics.median([r.wrk.p50_ms for r in by[t]]) for t in rate},
                cpu,
                statistics.median(ratios) if ratios else None,
                min(ratios, default=None),
                max(ratios, default=None),
                statistics.median(added) if added else None,
                max(r.others_cores for r in mine),
                sum(r.wrk.errors for r in mine),
            )
        )
    return found


async def measure_reference(
    config: RefConfig, binaries: dict[str, str], folder: Path, cpus: tuple[int | None, ...]
) -> list[RefRun]:
    server_cpu, load_cpu = cpus
    scripts = {k: write_script(folder, k, request_body(stream=k == "sse")) for k in KINDS}
    async with AsyncExitStack() as stack:
        nginx = await stack.enter_async_context(
            running_nginx(binaries["nginx"], Path(folder, "nginx"), server_cpu)
        )
        urls: dict[tuple[str, str], str] = {}
        pids = {"nginx": nginx.pid}
        logs = str(folder)
        for kind in KINDS:
            upstream = nginx.upstream[kind]
            passthrough = await stack.enter_async_context(
                bare(f"bare-{kind}", upstream, logs, server_cpu)
            )
            proxy = await stack.enter_async_context(
                sla_proxy(
                    f"sla-proxy-{kind}", upstream, sla_options(config.sla_limit), logs, server_cpu
                )
            )
            urls |= {(kind, "direct"): upstream, (kind, "nginx proxy"): nginx.proxy[kind]}
            urls |= {(kind, "bare aiohttp"): passthrough.url, (kind, "sla-proxy"): proxy.url}
            pids |= {f"bare aiohttp {kind}": passthrough.pid, f"sla-proxy {kind}": proxy.pid}
        wrk, top = binaries["wrk"], max(config.levels)
        for (kind, _), url in urls.items():  # opens every upstream pool to the top level
            await run_wrk(wrk, url, scripts[kind], top, 1, load_cpu)
        meter, runs = CpuMeter(pids), []
        for number in range(config.rounds):
            order = TARGETS if number % 2 == 0 else TARGETS[::-1]
            for kind in KINDS:
                for level in config.levels:
                    for target in order:
                        before = meter.read()
                        result = await run_wrk(
                            wrk, urls[kind, target], scripts[kind], level, config.seconds, load_cpu
                        )
                        spent = CpuMeter.spent(before, meter.read())
                        cpu = spent.servers.get(f"{target} {kind}")
                        per_request = (
                            1e6 * cpu / result.requests
                            if cpu is not None and result.requests
                            else None
                        )
                        runs.append(
                            RefRun(
                                kind, level, number, target, result, per_request, spent.others_cores
                            )
                        )
    return runs
