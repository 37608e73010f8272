"""`sla-proxy bench-suite` (what `make bench` runs): the proxy's cost, always as a
ratio or difference against a baseline measured in the same run, because the 2-core
machines are shared and absolute figures drift by more than the proxy costs.

1. Overhead: the simulator and the proxy each in their own process, as deployed; a
   closed-loop sweep sends the same workload straight to the simulator and through
   the proxy, interleaved per level by `run_sweep`. The proxy runs the fixed
   algorithm with a limit far above the load and no queue, so admission never
   binds and only forwarding costs show. Several whole sweeps ("rounds"), each
   flipping which endpoint goes first, are reduced to per-level medians, and the
   other tenants' CPU use is recorded per level so a contended run can be told.
   Non-streamed probes (one chat answer, one `GET /v1/models`) alternate likewise.
2. CPU and memory from /proc: CPU seconds per 1,000 requests and RSS of the proxy,
   next to the simulator and this load generator serving the same requests.
3. Hot-path micro-benchmarks: each against the plainest code doing the same job,
   interleaved per repeat; the median of the per-repeat ratios is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp

    from proxy.bench.stats import Dist
    from proxy.bench.sweep import Progress, SweepResult

ROLES = ("proxy", "simulator", "load generator")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


# --- configuration ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SuiteConfig:
    levels: tuple[int, ...] = (1, 8, 32, 64)
    requests: int | None = None  # per level and endpoint; None: the sweep's max(32, 4 x level)
    max_tokens: int = 32
    profile: str = "h100-llama3-8b"
    speed: float = 1.0
    probes: int = 30  # non-streamed requests per probe and endpoint
    probe_tokens: int = 16
    idle_seconds: float = 1.0  # the proxy's CPU at rest is measured over this
    rounds: int = 5  # whole sweeps; the report gives the median over them
    max_time: float = 240.0  # cap on all sweeps; in-flight requests are cut when it hits
    repeats: int = 7
    micro_scale: float = 1.0  # multiplies the micro-benchmarks' operation counts

    def __post_init__(self) -> None:
        if not self.levels or min(self.levels) < 1 or len(set(self.levels)) != len(self.levels):
            raise ValueError("levels must be distinct positive whole numbers")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests must be at least 1")
        if min(self.max_tokens, self.probe_tokens, self.repeats, self.rounds) < 1:
            raise ValueError("max_tokens, probe_tokens, repeats and rounds must be >= 1")
        if self.probes < 0:
            raise ValueError("probes must not be negative")
        if not (self.speed > 0 and self.max_time > 0 and self.micro_scale > 0):
            raise ValueError("speed, max_time and micro_scale must be positive")
        if self.idle_seconds < 0:
            raise ValueError("idle_seconds must not be negative")


# --- /proc readings -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_seconds: float  # utime + stime, all threads
    rss_bytes: int  # VmRSS
    hwm_bytes: int  # VmHWM: the peak RSS so far


def read_proc(pid: int) -> ProcSample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses; fields follow the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    memory: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            memory[name] = int(value.split()[0]) * 1024  # reported in kB
    return ProcSample(ticks / os.sysconf("SC_CLK_TCK"), memory["VmRSS"], memory["VmHWM"])


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    role: str
    pid: int
    idle: ProcSample  # started, warmed by one request of each kind, before the load
    after: ProcSample  # after the load
    requests: int  # requests it handled during the load

    @property
    def cpu_seconds(self) -> float:
        return self.after.cpu_seconds - self.idle.cpu_seconds

    @property
    def cpu_per_1k(self) -> float | None:
        return 1000 * self.cpu_seconds / self.requests if self.requests else None


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is in user


class _CpuPerLevel:
    """Samples every process's CPU each time a sweep level finishes, so the CPU spent
    between two level ends is charged to the later level (levels run one at a time).

    "others" is what the machine's other tenants used meanwhile, in cores: the
    machine's busy time minus ours over the wall time. It says which levels ran on
    a contended machine."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._last = self._now()
        self.spent: dict[tuple[str, int], dict[str, float]] = {}

    def _now(self) -> dict[str, float]:
        now = {role: read_proc(pid).cpu_seconds for role, pid in self._pids.items()}
        ours = sum({pid: now[role] for role, pid in self._pids.items()}.values())
        return now | {"_ours": ours, "_busy": machine_busy_seconds(), "_wall": time.monotonic()}

    def __call__(self, event: Progress) -> None:
        if event.total is None or event.done != event.total:
            return
        now = self._now()
        delta = {key: now[key] - self._last[key] for key in now}
        spent = {role: delta[role] for role in self._pids}
        if delta["_wall"] > 0:
            spent["others"] = max(0.0, delta["_busy"] - delta["_ours"]) / delta["_wall"]
        self.spent[event.endpoint, int(event.level)] = spent
        self._last = now


# --- the proxy overhead: sweep rows and probes --------------------------------------


@dataclass(frozen=True, slots=True)
class OverheadRow:
    """One level, direct against proxied: one round's figures, or the median over
    rounds (then the *_min / *_max fields give the rounds' spread)."""

    level: int
    rounds: int
    requests: int  # per endpoint, all rounds
    failed_direct: int  # failed or cut
    failed_proxied: int
    ttft_p50_direct: float | None  # seconds
    ttft_p50_proxied: float | None
    ttft_p90_direct: float | None
    ttft_p90_proxied: float | None
    ttft_p50_added_ms: float | None  # proxied minus direct
    ttft_p90_added_ms: float | None
    throughput_ratio: float | None  # proxied req/s over direct req/s
    e2e_p50_ratio: float | None  # proxied over direct
    proxy_cpu_ms_per_request: float | None  # during the proxied level
    others_cores: float | None  # other tenants' CPU use (cores) during both levels
    ttft_p50_added_min: float | None = None
    ttft_p50_added_max: float | None = None
    throughput_ratio_min: float | None = None
    throughput_ratio_max: float | None = None


def _added_ms(proxied: float | None, direct: float | None) -> float | None:
    return None if proxied is None or direct is None else 1000 * (proxied - direct)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _q(dist: Dist | None, attr: str = "p50") -> float | None:
    return None if dist is None else float(getattr(dist, attr))


def overhead_rows(
    sweep: SweepResult, cpu: dict[tuple[str, int], dict[str, float]]
) -> list[OverheadRow]:
    """One round: a row per level both endpoints finished."""
    direct = {int(s.level): s for s in sweep.for_endpoint("direct")}
    rows = []
    for proxied in sweep.for_endpoint("proxied"):
        level = int(proxied.level)
        base = direct.get(level)
        if base is None:
            continue
        spent = cpu.get(("proxied", level), {}).get("proxy")
        others = [cpu.get((who, level), {}).get("others") for who in ("direct", "proxied")]
        ttft = {
            (who, q): _q(stats.ttft, q)
            for who, stats in (("direct", base), ("proxied", proxied))
            for q in ("p50", "p90")
        }
        rows.append(
            OverheadRow(
                level=level,
                rounds=1,
                requests=proxied.requests,
                failed_direct=base.failed + base.cancelled,
                failed_proxied=proxied.failed + proxied.cancelled,
                ttft_p50_direct=ttft["direct", "p50"],
                ttft_p50_proxied=ttft["proxied", "p50"],
                ttft_p90_direct=ttft["direct", "p90"],
                ttft_p90_proxied=ttft["proxied", "p90"],
                ttft_p50_added_ms=_added_ms(ttft["proxied", "p50"], ttft["direct", "p50"]),
                ttft_p90_added_ms=_added_ms(ttft["proxied", "p90"], ttft["direct", "p90"]),
                throughput_ratio=_div(proxied.req_per_s, base.req_per_s),
                e2e_p50_ratio=_div(_q(proxied.e2e), _q(base.e2e)),
                proxy_cpu_ms_per_request=_div(
                    1000 * spent if spent is not None else None, proxied.requests
                ),
                others_cores=max((v for v in others if v is not None), default=None),
            )
        )
    return rows


def median_rows(rounds: list[list[OverheadRow]]) -> list[OverheadRow]:
    """Per level, the median of each figure over the rounds: a load spike from the
    machine's other tenants during one round moves the median little."""
    by_level: dict[int, list[OverheadRow]] = {}
    for rows in rounds:
        for row in rows:
            by_level.setdefault(row.level, []).append(row)
    merged = []
    for level, rows in sorted(by_level.items()):

        def values(name: str, rows: list[OverheadRow] = rows) -> list[float]:
            return [v for row in rows if (v := getattr(row, name)) is not None]

        def median(name: str) -> float | None:
            found = values(name)
            return statistics.median(found) if found else None

        added, ratio = values("ttft_p50_added_ms"), values("throughput_ratio")
        merged.append(
            OverheadRow(
                level,
                len(rows),
                sum(row.requests for row in rows),
                sum(row.failed_direct for row in rows),
                sum(row.failed_proxied for row in rows),
                ttft_p50_direct=median("ttft_p50_direct"),
                ttft_p50_proxied=median("ttft_p50_proxied"),
                ttft_p90_direct=median("ttft_p90_direct"),
                ttft_p90_proxied=median("ttft_p90_proxied"),
                ttft_p50_added_ms=median("ttft_p50_added_ms"),
                ttft_p90_added_ms=median("ttft_p90_added_ms"),
                throughput_ratio=median("throughput_ratio"),
                e2e_p50_ratio=median("e2e_p50_ratio"),
                proxy_cpu_ms_per_request=median("proxy_cpu_ms_per_request"),
                others_cores=median("others_cores"),
                ttft_p50_added_min=min(added, default=None),
                ttft_p50_added_max=max(added, default=None),
                throughput_ratio_min=min(ratio, default=None),
                throughput_ratio_max=max(ratio, default=None),
            )
        )
    return merged


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    count: int  # per endpoint
    failures: int
    direct: Dist | None  # seconds
    proxied: Dist | None

    @property
    def added_p50_ms(self) -> float | None:
        return _added_ms(_q(self.proxied), _q(self.direct))

    @property
    def e2e_p50_ratio(self) -> float | None:
        return _div(_q(self.proxied), _q(self.direct))


Call = Callable[["aiohttp.ClientSession", str], Awaitable[bool]]


def probe_calls(model: str, max_tokens: int) -> dict[str, Call]:
    """Name -> one request against a base URL, True when it succeeded."""

    body = {
        "model": model,
        "messages": [{"role": "user", "content": "What is continuous batching?"}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
    }

    async def chat(session: aiohttp.ClientSession, url: str) -> bool:
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            await response.read()
            return response.status == 200

    async def models(session: aiohttp.ClientSession, url: str) -> bool:
        async with session.get(f"{url}/v1/models") as response:
            await response.read()
            return response.status == 200

    return {f"chat, not streamed, {max_tokens} tokens": chat, "GET /v1/models": models}


async def run_probe(
    session: aiohttp.ClientSession, name: str, call: Call, direct: str, proxied: str, count: int
) -> ProbeResult:
    """Sequential requests, alternating which endpoint goes first (ABBA)."""
    from proxy.bench.stats import Dist

    times: dict[str, list[float]] = {direct: [], proxied: []}
    failures = 0
    for index in range(count):
        for url in (direct, proxied) if index % 2 == 0 else (proxied, direct):
            start = time.perf_counter()
            ok = await call(session, url)
            if ok:
                times[url].append(time.perf_counter() - start)
            else:
                failures += 1
    return ProbeResult(name, count, failures, Dist.of(times[direct]), Dist.of(times[proxied]))


async def scrape_overhead(session: aiohttp.ClientSession, admin_url: str) -> dict[str, float]:
    """The proxy's own `proxy_overhead_seconds` histogram: count, sum, share <= 0.1 ms."""
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(f"{admin_url}/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "proxy_overhead_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                found["count"] = sample.value
            elif sample.name.endswith("_sum"):
                found["sum_seconds"] = sample.value
            elif sample.labels.get("le") == "0.0001":
                found["le_0_1ms"] = sample.value
    if found.get("count"):
        found["mean_seconds"] = found.get("sum_seconds", 0.0) / found["count"]
        found["share_le_0_1ms"] = found.get("le_0_1ms", 0.0) / found["count"]
    return found


# --- the services, each in its own process ------------------------------------------


@dataclass(frozen=True, slots=True)
class Targets:
    direct: str  # the simulator's base URL
    proxied: str  # the proxy's data port
    admin: str  # the proxy's admin port
    pids: dict[str, int]  # role -> process id, for /proc readings


class ServiceError(Exception):
    """A service did not come up; one line for the user."""


def _open_log(directory: str, name: str) -> IO[bytes]:
    return Path(directory, f"{name}.log").open("wb")


def _log_text(directory: str, name: str) -> str:
    return Path(directory, f"{name}.log").read_text(errors="replace")


@asynccontextmanager
async def service(
    name: str, args: list[str], ready: str, logs: str, patience: float = 60.0
) -> AsyncIterator[tuple[int, re.Match[str]]]:
    """`python -m proxy ARGS` until the block ends; yields its pid and the match of
    `ready` (a regex) in its output. Stopped with SIGTERM, killed if it lingers."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PROXY_")}
    with _open_log(logs, name) as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", *args, stdout=log, stderr=log, cwd=PROJECT_ROOT, env=env
        )
    try:
        deadline = time.monotonic() + patience
        while not (match := re.search(ready, _log_text(logs, name))):
            if process.returncode is not None or time.monotonic() > deadline:
                tail = _log_text(logs, name).strip().splitlines()[-3:]
                raise ServiceError(f"{name} did not start: {' | '.join(tail) or 'no output'}")
            await asyncio.sleep(0.05)  # polling a log file; bounded by the deadline
        yield process.pid, match
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10.0)
            except TimeoutError:
                process.kill()
                await process.wait()


@asynccontextmanager
async def services(config: SuiteConfig) -> AsyncIterator[Targets]:
    """The simulator and a never-binding proxy in front of it, on free ports."""
    async with AsyncExitStack() as stack:
        logs = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-suite-"))
        sim_args = ["sim", "--port", "0", "--profile", config.profile, "--speed", str(config.speed)]
        sim_pid, sim = await stack.enter_async_context(
            service("simulator", sim_args, r"listening on (http://\S+)", logs)
        )
        proxy_args = ["serve", "--upstream", sim[1], "--port", "0", "--admin-port", "0"]
        proxy_args += ["--algorithm", "fixed", "--initial-limit", "1024", "--max-limit", "1024"]
        proxy_args += ["--queue-size", "0", "--log-level", "info"]
        ready = r"forwarding (http://\S+) -> .*admin on (http://[^\s(]+)"
        proxy_pid, proxied = await stack.enter_async_context(
            service("proxy", proxy_args, ready, logs)
        )
        pids = {"proxy": proxy_pid, "simulator": sim_pid, "load generator": os.getpid()}
        yield Targets(sim[1], proxied[1], proxied[2], pids)


# --- the load phase -----------------------------------------------------------------


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

    from proxy.bench.client import first_model

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
    from proxy.bench.prompts import OutputLength
    from proxy.bench.sweep import Endpoint, SweepConfig, run_sweep

    per_level = _CpuPerLevel(targets.pids)

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


# --- micro-benchmarks ---------------------------------------------------------------


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


def _timed(work: Callable[[], object]) -> Timed:
    def run() -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    return run


def sse_stream(tokens: int, seed: int = 0) -> list[bytes]:
    """One vLLM-shaped chat stream, one event per read: role, content, finish, usage, DONE."""
    rng = random.Random(seed)
    words = ("the", " model", " is", " a", " simulated", " stand", " in", " for", " vLLM")
    head: dict[str, Any] = {
        "id": f"chatcmpl-{rng.getrandbits(128):032x}",
        "object": "chat.completion.chunk",
    }
    head |= {"created": 1795841907, "model": "meta-llama/Llama-3.1-8B-Instruct"}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + json.dumps(head | {"choices": choices} | extra).encode() + b"\n\n"

    def choice(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [event([choice({"role": "assistant", "content": ""})])]
    events += [event([choice({"content": rng.choice(words)})]) for _ in range(tokens)]
    events.append(event([choice({}, "length")]))
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": tokens + 12}
    events += [event([], usage=usage), b"data: [DONE]\n\n"]
    return events


def bench_sse(repeats: int, streams: int, tokens: int = 64) -> list[MicroResult]:
    from proxy.server.sse import SseRelay

    stream = sse_stream(tokens)
    ops = streams * len(stream)

    def relay(strip_usage: bool) -> Timed:
        def work() -> None:
            for _ in range(streams):
                relay = SseRelay(strip_usage)
                for data in stream:
                    relay.feed(data)
                relay.flush()

        return _timed(work)

    def split() -> None:
        for _ in range(streams):
            buffer = b""
            for data in stream:
                buffer += data
                out = []
                while (end := buffer.find(b"\n\n")) >= 0:
                    out.append(buffer[: end + 2])
                    buffer = buffer[end + 2 :]
                b"".join(out)

    baseline = ("bytes.find(b'\\n\\n') split loop", _timed(split))
    return [
        compare(
            f"sse relay ({which})",
            (f"SseRelay({strip}).feed", relay(strip)),
            baseline,
            "chunk",
            ops,
            repeats,
        )
        for which, strip in (("client asked usage", False), ("proxy adds usage", True))
    ]


def _event_loop_runner() -> asyncio.Runner:
    """uvloop when installed: the loop the proxy itself runs on."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on platforms without it
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


Gate = Callable[[], AbstractAsyncContextManager[object]]


async def _admissions(gate: Gate, tasks: int, per_task: int, yield_inside: bool) -> float:
    async def worker() -> None:
        for _ in range(per_task):
            async with gate():
                if yield_inside:
                    await asyncio.sleep(0)  # hold the permit across a loop turn

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter() - start


def _gate_pair(
    runner: asyncio.Runner, limit: int, tasks: int, per_task: int, yield_inside: bool
) -> tuple[Timed, Timed]:
    from proxy.limiter import Limiter
    from proxy.settings import Priority

    def limiter_run() -> float:
        limiter = Limiter(limit, tasks)
        gate = lambda: limiter.acquire(Priority.NORMAL, 60.0)  # noqa: E731
        return runner.run(_admissions(gate, tasks, per_task, yield_inside))

    def semaphore_run() -> float:
        async def go() -> float:
            semaphore = asyncio.Semaphore(limit)
            return await _admissions(lambda: semaphore, tasks, per_task, yield_inside)

        return runner.run(go())

    return limiter_run, semaphore_run


def bench_limiter(repeats: int, ops: int) -> list[MicroResult]:
    """Uncontended (the never-binding proxy of this suite), and 16 tasks through a
    limit of 4 where every release hands the permit to a waiter."""
    results = []
    with _event_loop_runner() as runner:
        for name, limit, tasks, yield_inside in (
            ("limiter, free permit", 1024, 1, False),
            ("limiter, 16 tasks over limit 4", 4, 16, True),
        ):
            per_task = max(1, ops // tasks)
            target, baseline = _gate_pair(runner, limit, tasks, per_task, yield_inside)
            results.append(
                compare(
                    name,
                    ("Limiter.acquire async with", target),
                    ("asyncio.Semaphore async with", baseline),
                    "admission",
                    per_task * tasks,
                    repeats,
                )
            )
    return results


def bench_window(repeats: int, ops: int, per_snapshot: int = 200) -> MicroResult:
    """Samples arriving at 200/s with one snapshot per second (the control interval),
    through a full 30 s / 4096-sample window."""
    from proxy.core.window import LatencyWindow

    rng = random.Random(1)
    values = [rng.lognormvariate(-2.0, 0.5) for _ in range(ops)]
    max_samples, step = 4096, 1 / per_snapshot

    def window() -> None:
        win = LatencyWindow(30.0, max_samples)
        for index, value in enumerate(values):
            win.add(value, index * step)
            if index % per_snapshot == per_snapshot - 1:
                win.snapshot(index * step).percentile(0.9)

    def plain() -> None:
        samples: list[float] = []
        for index, value in enumerate(values):
            samples.append(value)
            if index % per_snapshot == per_snapshot - 1:
                del samples[:-max_samples]
                ordered = sorted(samples)
                ordered[int(0.9 * (len(ordered) - 1))]

    return compare(
        "rolling window",
        ("LatencyWindow.add + snapshot", _timed(window)),
        ("list.append + sorted", _timed(plain)),
        "sample",
        ops,
        repeats,
    )


def micro_benchmarks(repeats: int = 7, scale: float = 1.0) -> list[MicroResult]:
    def n(base: int) -> int:
        return max(1, round(base * scale))

    return [
        *bench_sse(repeats, streams=n(60)),
        *bench_limiter(repeats, ops=n(20_000)),
        bench_window(repeats, ops=n(8_000)),
    ]


# --- the whole suite ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SuiteResult:
    config: SuiteConfig
    machine: dict[str, Any]
    load: LoadResult
    micro: list[MicroResult]
    duration: float
    command: str = "make bench"
    notes: list[str] = field(default_factory=list)


def machine_info() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


async def run_suite(
    config: SuiteConfig, progress: Callable[[Progress], None] | None = None
) -> tuple[dict[str, Any], LoadResult]:
    machine = machine_info()
    async with services(config) as targets:
        load = await measure(targets, config, progress)
    machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return machine, load


# --- output -------------------------------------------------------------------------


def _ms(seconds: float | None, digits: int = 1) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.{digits}f}"


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(result: SuiteResult) -> str:
    config, load, machine = result.config, result.load, result.machine
    mib = 1 / 2**20
    lines = [
        "# sla-proxy benchmarks",
        "",
        f"`{result.command}` on {machine['date_utc']} UTC: {machine['cpus']} CPUs "
        f"({machine['cpu_model']}), Python {machine['python']}, load average "
        f"{machine['load_average_at_start']} at start, {machine.get('load_average_at_end')} "
        f"at end (the machine is shared). Simulator `{config.profile}` at speed "
        f"{config.speed:g}; streamed chat, {config.max_tokens} output tokens; the proxy runs "
        "`--algorithm fixed --initial-limit 1024 --max-limit 1024 --queue-size 0`. "
        "Levels run from the top down, after a burst of top-level concurrency that opens "
        "the proxy's upstream connections; each level alternates which endpoint goes "
        f"first. Whole run {result.duration:.0f} s.",
        "",
        "## Proxy overhead (closed-loop sweep, direct and proxied interleaved per level)",
        "",
        f"Median over {config.rounds} rounds (whole sweeps); brackets: the rounds' range.",
        "",
    ]
    lines += _md_table(
        [
            "concurrency",
            "requests",
            "TTFT p50 direct / proxied ms",
            "added ms [range]",
            "TTFT p90 direct / proxied ms",
            "added ms",
            "req/s ratio [range]",
            "e2e p50 ratio",
            "proxy CPU ms/req",
            "others' CPU, cores",
            "failed d/p",
        ],
        [
            [
                str(r.level),
                str(r.requests),
                f"{_ms(r.ttft_p50_direct)} / {_ms(r.ttft_p50_proxied)}",
                f"{_num(r.ttft_p50_added_ms, '+.1f')} "
                f"[{_num(r.ttft_p50_added_min, '+.1f')}, {_num(r.ttft_p50_added_max, '+.1f')}]",
                f"{_ms(r.ttft_p90_direct)} / {_ms(r.ttft_p90_proxied)}",
                _num(r.ttft_p90_added_ms, "+.1f"),
                f"{_num(r.throughput_ratio)} "
                f"[{_num(r.throughput_ratio_min)}, {_num(r.throughput_ratio_max)}]",
                _num(r.e2e_p50_ratio),
                _num(r.proxy_cpu_ms_per_request, ".2f"),
                _num(r.others_cores, ".2f"),
                f"{r.failed_direct}/{r.failed_proxied}",
            ]
            for r in load.overhead
        ],
    )
    lines += ["", "## Non-streamed probes (sequential, alternating)", ""]
    lines += _md_table(
        ["probe", "n", "direct p50 / p90 ms", "proxied p50 / p90 ms", "added p50 ms", "ratio"],
        [
            [
                p.name,
                str(p.count),
                f"{_ms(_q(p.direct), 2)} / {_ms(_q(p.direct, 'p90'), 2)}",
                f"{_ms(_q(p.proxied), 2)} / {_ms(_q(p.proxied, 'p90'), 2)}",
                _num(p.added_p50_ms, "+.2f"),
                _num(p.e2e_p50_ratio),
            ]
            for p in load.probes
        ],
    )
    lines += ["", "## CPU and memory (from /proc, over probes + sweep)", ""]
    lines += _md_table(
        [
            "process",
            "CPU s",
            "requests",
            "CPU s / 1k req",
            "RSS idle MiB",
            "RSS after MiB",
            "peak RSS MiB",
        ],
        [
            [
                u.role,
                f"{u.cpu_seconds:.2f}",
                str(u.requests),
                _num(u.cpu_per_1k, ".2f"),
                f"{u.idle.rss_bytes * mib:.1f}",
                f"{u.after.rss_bytes * mib:.1f}",
                f"{u.after.hwm_bytes * mib:.1f}",
            ]
            for u in load.processes
        ],
    )
    metric = load.overhead_metric
    lines += [
        "",
        f"Proxy CPU at rest: {_num(load.idle_proxy_cpu_percent, '.1f')} % of a core. "
        f"`proxy_overhead_seconds`: {metric.get('count', 0):.0f} requests, mean "
        f"{_ms(metric.get('mean_seconds'), 3)} ms, "
        f"{100 * metric.get('share_le_0_1ms', 0.0):.0f} % at or below 0.1 ms.",
        "",
        "## Hot-path micro-benchmarks (median of per-repeat ratios)",
        "",
    ]
    lines += _md_table(
        ["what", "target", "ns / op", "baseline", "ns / op", "ratio", "range", "op"],
        [
            [
                m.name,
                f"`{m.target}`",
                f"{m.target_ns:.0f}",
                f"`{m.baseline}`",
                f"{m.baseline_ns:.0f}",
                f"{m.ratio:.2f}",
                f"{m.ratio_min:.2f}-{m.ratio_max:.2f}",
                f"{m.unit} (x{m.ops}, {m.repeats} repeats)",
            ]
            for m in result.micro
        ],
    )
    if result.notes:
        lines += ["", "Notes:", "", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def to_dict(result: SuiteResult) -> dict[str, Any]:
    from proxy.bench import report

    load = result.load
    return {
        "command": result.command,
        "config": asdict(result.config),
        "machine": result.machine,
        "duration": result.duration,
        "overhead": [asdict(r) for r in load.overhead],
        "probes": [
            asdict(p) | {"added_p50_ms": p.added_p50_ms, "e2e_p50_ratio": p.e2e_p50_ratio}
            for p in load.probes
        ],
        "processes": [
            asdict(u) | {"cpu_seconds": u.cpu_seconds, "cpu_seconds_per_1k": u.cpu_per_1k}
            for u in load.processes
        ],
        "idle_proxy_cpu_percent": load.idle_proxy_cpu_percent,
        "proxy_overhead_seconds": load.overhead_metric,
        "micro": [asdict(m) for m in result.micro],
        "rounds": [[asdict(row) for row in rows] for rows in load.rounds],
        "sweeps": [report.to_dict(sweep) for sweep in load.sweeps],
        "notes": result.notes,
    }


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


def write_outputs(result: SuiteResult, out: Path) -> list[Path]:
    from proxy.bench import plot

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "bench.json", out / "bench.md"]
    written[0].write_text(json.dumps(to_dict(result), indent=2) + "\n", encoding="utf-8")
    written[1].write_text(markdown(result), encoding="utf-8")
    if write_png(result, out / "bench.png"):
        written.append(out / "bench.png")
    sweeps = result.load.sweeps
    if sweeps and plot.write_png(sweeps[0], out / "sweep.png"):
        written.append(out / "sweep.png")
    return written


# --- command line -------------------------------------------------------------------


def _levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = SuiteConfig()
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="(out/bench)")
    parser.add_argument(
        "--levels",
        type=_levels,
        default=defaults.levels,
        metavar="C1,C2,...",
        help="concurrency levels (1,8,32,64)",
    )
    parser.add_argument("--requests", type=int, help="per level and endpoint (max(32, 4 x C))")
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens, help="(32)")
    parser.add_argument("--profile", default=defaults.profile, help="simulator profile")
    parser.add_argument("--speed", type=float, default=defaults.speed, help="simulator speed (1)")
    parser.add_argument(
        "--probes",
        type=int,
        default=defaults.probes,
        help="non-streamed probe requests per endpoint (30)",
    )
    parser.add_argument(
        "--max-time", type=float, default=defaults.max_time, help="cap on all sweeps, s (240)"
    )
    parser.add_argument(
        "--rounds", type=int, default=defaults.rounds, help="whole sweeps, median reported (5)"
    )
    parser.add_argument(
        "--repeats", type=int, default=defaults.repeats, help="micro-benchmark repeats (7)"
    )
    parser.add_argument(
        "--micro-scale",
        type=float,
        default=defaults.micro_scale,
        help="multiplies micro-benchmark sizes (1)",
    )


def _config(args: argparse.Namespace) -> SuiteConfig:
    return SuiteConfig(
        levels=args.levels,
        requests=args.requests,
        max_tokens=args.max_tokens,
        profile=args.profile,
        speed=args.speed,
        probes=args.probes,
        max_time=args.max_time,
        rounds=args.rounds,
        repeats=args.repeats,
        micro_scale=args.micro_scale,
    )


def _notes(config: SuiteConfig, load: LoadResult) -> list[str]:
    notes = []
    if len(load.sweeps) < config.rounds or any(sweep.truncated for sweep in load.sweeps):
        notes.append(f"the sweeps hit their {config.max_time:g} s cap")
    others = [r.others_cores for r in load.overhead if r.others_cores is not None]
    cpus = os.cpu_count() or 1
    if others and max(others) > cpus / 4:
        notes.append(
            f"other tenants kept up to {max(others):.1f} of {cpus} cores busy during the sweep: "
            "the proxied path needs three busy processes where the direct one needs two, so "
            "CPU contention counts against the proxy; compare runs with low others' CPU"
        )
    failed = sum(r.failed_direct + r.failed_proxied for r in load.overhead)
    failed += sum(p.failures for p in load.probes)
    if failed:
        notes.append(f"{failed} requests failed or were cut: compare the ratios with care")
    return notes


def run(args: argparse.Namespace) -> int:
    import aiohttp

    from proxy.bench.progress import ProgressBar
    from proxy.bench.sweep import BenchError

    try:
        config = _config(args)
    except ValueError as exc:
        print(f"sla-proxy bench-suite: error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    bar = ProgressBar(sys.stderr)
    try:
        with _event_loop_runner() as runner:
            machine, load = runner.run(run_suite(config, bar))
    except (ServiceError, BenchError, aiohttp.ClientError, OSError) as exc:
        print(f"sla-proxy bench-suite: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nsla-proxy bench-suite: interrupted", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print("micro-benchmarks ...", file=sys.stderr)
    micro = micro_benchmarks(config.repeats, config.micro_scale)
    command = " ".join(["python -m proxy bench-suite", *sys.argv[2:]])
    result = SuiteResult(
        config,
        machine,
        load,
        micro,
        time.perf_counter() - started,
        command,
        _notes(config, load),
    )
    print(markdown(result))
    written = write_outputs(result, args.out)
    print(f"wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    return 0 if all(s.ok for sweep in load.sweeps for s in sweep.levels) else 1
