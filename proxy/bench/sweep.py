"""The sweep: levels of closed-loop concurrency or open-loop Poisson request rate,
against one endpoint or two interleaved (`run_sweep` is the library entry point).

Every level draws its prompts, output lengths and arrival gaps from a generator
seeded by (seed, level index), so two endpoints compared in one run receive exactly
the same workload. Endpoints alternate per level in ABBA order (A,B then B,A), so
slow drift of the machine hits both equally. The sweep is bounded: each level by
its request count or duration, the whole run by `max_total_seconds`; when the cap
hits, in-flight requests are cancelled and counted as `cancelled`, not as failures.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from proxy.bench.saturation import Saturation, find_saturation
from proxy.load.client import Api, Clock, RequestResult, first_model, request_body, send_request
from proxy.load.prompts import OutputLength, Prompt, builtin_prompts
from proxy.load.stats import Dist, LevelStats, Slo, summarize

Mode = Literal["concurrency", "rate"]
DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16, 32, 64, 128)


class BenchError(Exception):
    """The sweep cannot start (endpoint unreachable, no model); one line for the user."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    model: str | None = None  # None: the first model the endpoint lists


@dataclass(frozen=True, slots=True)
class SweepConfig:
    endpoints: tuple[Endpoint, ...]
    mode: Mode = "concurrency"
    levels: tuple[float, ...] = DEFAULT_CONCURRENCY
    # Per level and endpoint: a request count, or a duration; neither: auto count
    # (see `requests_for`).
    requests: int | None = None
    duration: float | None = None
    api: Api = "chat"
    prompts: tuple[Prompt, ...] = field(default_factory=builtin_prompts)
    output_len: OutputLength = field(default_factory=lambda: OutputLength(128))
    ignore_eos: bool = True
    seed: int = 0
    slo: Slo = field(default_factory=Slo)
    max_total_seconds: float = 900.0
    request_timeout: float = 300.0
    min_gain: float = 0.10  # saturation: throughput gain per step below this

    def __post_init__(self) -> None:
        if not 1 <= len(self.endpoints) <= 2:
            raise ValueError("one endpoint, or two to compare")
        if len({e.name for e in self.endpoints}) != len(self.endpoints):
            raise ValueError("endpoint names must differ")
        if not self.levels or any(not level > 0 for level in self.levels):
            raise ValueError("levels must be positive")
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("levels must not repeat")
        if self.mode == "concurrency" and any(level != int(level) for level in self.levels):
            raise ValueError("concurrency levels must be whole numbers")
        if self.requests is not None and self.duration is not None:
            raise ValueError("give requests per level or duration per level, not both")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests per level must be at least 1")
        if self.duration is not None and not self.duration > 0:
            raise ValueError("duration per level must be positive")
        if not self.prompts:
            raise ValueError("no prompts")
        if not self.max_total_seconds > 0 or not self.request_timeout > 0:
            raise ValueError("time limits must be positive")

    def requests_for(self, level: float) -> int | None:
        """Requests at this level; None in duration mode. The automatic count gives
        each closed-loop slot four requests, and an open loop about 10 s of arrivals,
        with at least 32 for stable percentiles."""
        if self.duration is not None:
            return None
        if self.requests is not None:
            return self.requests
        per_level = 4 * level if self.mode == "concurrency" else 10 * level
        return max(32, math.ceil(per_level))


@dataclass(frozen=True, slots=True)
class Progress:
    endpoint: str
    level: float
    done: int
    total: int | None  # None in duration mode
    elapsed: float  # seconds into this level
    level_seconds: float | None  # the level's duration in duration mode


@dataclass(frozen=True, slots=True)
class SweepResult:
    config: SweepConfig
    models: dict[str, str]  # endpoint name -> model used
    levels: tuple[LevelStats, ...]  # in run order
    saturation: dict[str, Saturation]
    duration: float
    truncated: bool  # the total time cap stopped the sweep early

    def for_endpoint(self, name: str) -> list[LevelStats]:
        return sorted((s for s in self.levels if s.endpoint == name), key=lambda s: s.level)

    def ratios(self) -> list[dict[str, float | None]]:
        """Second endpoint over first, per level both finished (empty unless comparing)."""
        if len(self.config.endpoints) < 2:
            return []
        first, second = (self.for_endpoint(e.name) for e in self.config.endpoints)
        by_level = {s.level: s for s in second}
        rows: list[dict[str, float | None]] = []
        for a in first:
            b = by_level.get(a.level)
            if b is None:
                continue
            rows.append(
                {
                    "level": a.level,
                    "req_per_s": _ratio(b.req_per_s, a.req_per_s),
                    "output_tok_per_s": _ratio(b.output_tok_per_s, a.output_tok_per_s),
                    "goodput": _ratio(b.goodput, a.goodput),
                    "e2e_p90": _ratio(_p90(b.e2e), _p90(a.e2e)),
                    "ttft_p90": _ratio(_p90(b.ttft), _p90(a.ttft)),
                }
            )
        return rows


def _ratio(b: float | None, a: float | None) -> float | None:
    return b / a if a and b is not None else None


def _p90(dist: Dist | None) -> float | None:
    return dist.p90 if dist is not None else None


ProgressFn = Callable[[Progress], None]


class _Workload:
    """The level's requests in order: identical for every endpoint at this level."""

    def __init__(self, config: SweepConfig, index: int, model: str) -> None:
        self._config = config
        self._model = model
        self.total = config.requests_for(config.levels[index])
        self._rng = random.Random(f"{config.seed}:{index}:work")
        self.arrivals = random.Random(f"{config.seed}:{index}:arrivals")
        self._issued = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        if self.total is not None and self._issued >= self.total:
            raise StopIteration
        self._issued += 1
        prompt = self._rng.choice(self._config.prompts)
        max_tokens = self._config.output_len.draw(self._rng)
        cfg = self._config
        return request_body(cfg.api, self._model, prompt, max_tokens, cfg.ignore_eos)


class _Level:
    """One level against one endpoint: runs it, bounded by the sweep's deadline."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: SweepConfig,
        endpoint: Endpoint,
        model: str,
        index: int,
        deadline: float,
        clock: Clock,
        progress: ProgressFn | None,
    ) -> None:
        self.session, self.config, self.endpoint = session, config, endpoint
        self.level = config.levels[index]
        self.work = _Workload(config, index, model)
        self.deadline, self.clock, self.progress = deadline, clock, progress
        self.results: list[RequestResult] = []
        self.inflight = 0
        self.started = clock()
        self.stop_at = self.started + config.duration if config.duration else None

    async def _one(self, body: dict[str, Any]) -> None:
        self.inflight += 1
        try:
            result = await send_request(
                self.session,
                self.endpoint.url,
                self.config.api,
                body,
                self.clock,
                self.config.request_timeout,
            )
        finally:
            self.inflight -= 1
        self.results.append(result)
        if self.progress is not None:
            self.progress(
                Progress(
                    self.endpoint.name,
                    self.level,
                    len(self.results),
                    self.work.total,
                    self.clock() - self.started,
                    self.config.duration,
                )
            )

    def _open_for_new(self) -> bool:
        now = self.clock()
        return now < self.deadline and (self.stop_at is None or now < self.stop_at)

    async def _closed_worker(self) -> None:
        while self._open_for_new():
            body = next(self.work, None)
            if body is None:
                return
            await self._one(body)

    async def _open_loop(self, tasks: set[asyncio.Task[None]]) -> None:
        send_at = self.clock()
        for body in self.work:
            delay = send_at - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self._open_for_new():
                return
            task = asyncio.create_task(self._one(body))
            tasks.add(task)
            send_at += self.work.arrivals.expovariate(self.level)

    async def run(self) -> tuple[LevelStats, bool]:
        """The level's statistics, and whether the sweep's deadline cut it short."""
        tasks: set[asyncio.Task[None]] = set()
        if self.config.mode == "concurrency":
            tasks.update(asyncio.create_task(self._closed_worker()) for _ in range(int(self.level)))
        else:
            tasks.add(asyncio.create_task(self._open_loop(tasks)))
        cancelled = 0
        while True:
            remaining = self.deadline - self.clock()
            pending = {t for t in tasks if not t.done()}
            if not pending:
                break
            if remaining <= 0:
                cancelled = self.inflight
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
            # The open loop adds tasks while it runs; re-check after each wake-up.
            await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
        duration = (
            max(r.start + r.e2e for r in self.results) - min(r.start for r in self.results)
            if self.results
            else self.clock() - self.started
        )
        stats = summarize(
            self.endpoint.name,
            self.config.mode,
            self.level,
            self.results,
            duration,
            self.config.slo,
            cancelled,
        )
        return stats, cancelled > 0 or self.clock() >= self.deadline


async def _resolve_models(session: aiohttp.ClientSession, config: SweepConfig) -> dict[str, str]:
    models: dict[str, str] = {}
    for endpoint in config.endpoints:
        if endpoint.model is not None:
            models[endpoint.name] = endpoint.model
            continue
        try:
            models[endpoint.name] = await first_model(session, endpoint.url, 30.0)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            raise BenchError(
                f"{endpoint.url}: cannot list models ({type(exc).__name__}: {exc})"
            ) from None
    return models


async def run_sweep(
    config: SweepConfig,
    progress: ProgressFn | None = None,
    clock: Clock = time.perf_counter,
) -> SweepResult:
    started = clock()
    deadline = started + config.max_total_seconds
    # limit=0: aiohttp's default pool of 100 connections would silently cap concurrency.
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        models = await _resolve_models(session, config)
        results: list[LevelStats] = []
        truncated = False
        for index in range(len(config.levels)):
            order = config.endpoints if index % 2 == 0 else config.endpoints[::-1]
            for endpoint in order:
                level = _Level(
                    session,
                    config,
                    endpoint,
                    models[endpoint.name],
                    index,
                    deadline,
                    clock,
                    progress,
                )
                stats, truncated = await level.run()
                results.append(stats)
                if truncated:
                    break
            if truncated:
                break
    result_levels = tuple(results)
    saturation = {}
    for endpoint in config.endpoints:
        rows = sorted(
            (s for s in result_levels if s.endpoint == endpoint.name), key=lambda s: s.level
        )
        saturation[endpoint.name] = find_saturation(
            [s.level for s in rows],
            [s.req_per_s for s in rows],
            [_p90(s.e2e) for s in rows],
            config.min_gain,
        )
    return SweepResult(config, models, result_levels, saturation, clock() - started, truncated)
