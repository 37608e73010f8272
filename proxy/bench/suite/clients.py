"""Issue 10's bench goals. (1) A normal request's p50 (wrk, one connection) with
thousands of idle and trickling client sockets held open against sla-proxy, against
its p50 without them: phases alternate within each round, the ratio is per round.
(2) sla-proxy's RSS with a full queue: a limit of 1, an upstream that holds the one
admitted request, and `queued` more requests waiting.

The options the issue asks for (client timeouts, `--max-connections`) may not exist
yet: whatever `serve` accepts today runs; extra options come from the config, and
`--max-connections`, when it exists, is set above the socket count so the normal
requests are never the ones refused."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.bench.suite.meter import CpuMeter
from proxy.bench.suite.nginx import running_nginx
from proxy.bench.suite.payloads import request_body
from proxy.bench.suite.servers import sla_options, sla_proxy
from proxy.bench.suite.sockets import (
    SLOW_HEAD,
    SocketStates,
    close_all,
    connect_many,
    open_fds,
    raise_fd_limit,
    states,
    trickle,
    until,
)
from proxy.bench.suite.wrk import WrkResult, run_wrk, write_script

if TYPE_CHECKING:
    from proxy.bench.suite.refconfig import RefConfig


@dataclass(frozen=True, slots=True)
class SlowRun:
    round: int
    with_sockets: bool
    wrk: WrkResult
    sockets: SocketStates | None  # the slow sockets' states after the run
    proxy_cpu_us_per_request: float | None
    others_cores: float


@dataclass(frozen=True, slots=True)
class SlowResult:
    idle: int
    trickling: int
    fd_limit: int
    options: list[str]  # sla-proxy's options beyond upstream and ports
    runs: list[SlowRun]

    def _p50(self, with_sockets: bool) -> list[float]:
        return [r.wrk.p50_ms for r in self.runs if r.with_sockets is with_sockets]

    @property
    def p50_without_ms(self) -> float:
        return statistics.median(self._p50(False))

    @property
    def p50_with_ms(self) -> float:
        return statistics.median(self._p50(True))

    @property
    def ratios(self) -> list[float]:
        pairs: dict[int, dict[bool, float]] = {}
        for run in self.runs:
            pairs.setdefault(run.round, {})[run.with_sockets] = run.wrk.p50_ms
        return [p[True] / p[False] for p in pairs.values() if len(p) == 2 and p[False] > 0]

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None


def with_max_connections(
    extra: tuple[tuple[str, str], ...], connections: int
) -> list[tuple[str, str]]:
    from proxy.settings import Settings

    given = list(extra)
    if "max_connections" in Settings.model_fields and all(n != "max-connections" for n, _ in given):
        given.append(("max-connections", str(connections)))
    return given


async def measure_slow(
    config: RefConfig, binaries: dict[str, str], folder: Path, cpus: tuple[int | None, ...]
) -> SlowResult:
    server_cpu, load_cpu = cpus
    fd_limit = raise_fd_limit(max(config.slow_sockets, config.queued) + 1024)
    trickling = round(config.slow_sockets * config.trickle_share)
    idle = config.slow_sockets - trickling
    extra = with_max_connections(config.proxy_options, config.slow_sockets + 256)
    options = sla_options(config.sla_limit, extra)
    script = write_script(folder, "slow-json", request_body(stream=False))
    async with AsyncExitStack() as stack:
        nginx = await stack.enter_async_context(
            running_nginx(binaries["nginx"], Path(folder, "nginx-slow"), server_cpu)
        )
        upstream = nginx.upstream["json"]
        proxy = await stack.enter_async_context(
            sla_proxy("sla-proxy-slow", upstream, options, str(folder), server_cpu)
        )
        wrk = binaries["wrk"]
        await run_wrk(wrk, proxy.url, script, 1, 1, load_cpu)
        baseline_fds = open_fds(proxy.pid)
        meter, runs = CpuMeter({"proxy": proxy.pid}), []
        for number in range(config.rounds):
            for with_sockets in (False, True) if number % 2 == 0 else (True, False):
                held, slow = [], []
                task = None
                if with_sockets:
                    held = await connect_many(proxy.port, idle, server_pid=proxy.pid)
                    slow = await connect_many(proxy.port, trickling, SLOW_HEAD, proxy.pid)
                    task = asyncio.create_task(trickle(slow, config.trickle_interval))
                before = meter.read()
                result = await run_wrk(wrk, proxy.url, script, 1, config.seconds, load_cpu)
                spent = CpuMeter.spent(before, meter.read())
                found = states(held + slow) if with_sockets else None
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                close_all(held + slow)
                await until(lambda: open_fds(proxy.pid) <= baseline_fds + 8, 30)
                cpu = spent.servers["proxy"]
                per = 1e6 * cpu / result.requests if result.requests else None
                runs.append(SlowRun(number, with_sockets, result, found, per, spent.others_cores))
    return SlowResult(idle, trickling, fd_limit, options, runs)
