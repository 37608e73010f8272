"""Clients -> proxy replicas -> simulated engine, in one process on one clock.

The objects are the real ones: each replica is the `Limiter` and `ControlLoop` that
`proxy.server.app.create_app` builds (so the same window, controller and alert), and
the engine is the simulator's `Engine` stepped by its `EngineRunner` at speed 1 on
the loop's clock. Only HTTP is left out: an admitted request is submitted to the
engine directly, its TTFT and end-to-end time are measured on the loop's clock from
the moment it is sent (as `proxy.server.forward` measures them), and its `Sample` is
recorded as `ProxyState.record` records one. Run it on `proxy.scenarios.vtime`'s loop and
a ten-minute overload takes seconds, exactly and repeatably.

With `RunConfig.pool`, one proxy fronts several engines: the server's own `Pool`
(`proxy.pool`: one queue, a limit per member, dispatch by headroom, ejection, probes,
DNS membership) and the server's outcome path through it: a member that cannot be
reached is recorded as a connect failure and the request fails over
(`Lease.fail_over`), one that dies mid-answer cuts the requests it had. Engines that
join later appear in the pool's DNS answer from their `joins` time on, and the pool
finds them on its next look-up (`--resolve-interval`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from proxy import factory
from proxy.admission import Listener, Ticket
from proxy.control import Tick
from proxy.core.ejection import Event, Reason
from proxy.core.outcome import Outcome, Sample, UpstreamErrorKind
from proxy.errors import Shed, UpstreamUnavailable
from proxy.limiter import Limiter, Priority
from proxy.load.arrivals import Arrival, Load
from proxy.pool import Member, Pool, PoolListener
from proxy.settings import Settings, UpstreamSpec
from proxy.sim.engine import Engine, Sequence
from proxy.sim.profiles import Profile
from proxy.sim.runner import EngineRunner, SeqHandle

# Writers are woken on the first and the last token only: that is all a measurement
# needs, and waking every sequence every step would dominate the run time.
_NO_STREAMING_WAKEUPS = 1e9


@dataclass(frozen=True, slots=True)
class Fault:
    """From `at` on, every engine step takes `slowdown` times as long (the simulator's
    `slowdown` fault, as POST /sim/faults sets it)."""

    at: float
    slowdown: float


@dataclass(frozen=True, slots=True)
class PoolEngine:
    """One engine of a pool: in the pool's DNS answer from `joins` on; at `dies` it
    stops (what it runs is cut, connections to it are refused), at `returns` it serves
    again."""

    profile: Profile
    joins: float = 0.0
    dies: float | None = None
    returns: float | None = None  # after dying: serving again (an empty engine)


POOL_HOST = "engines.pool"  # the pool's DNS name when engines join later
POOL_PORT = 8000


def engine_address(index: int) -> str:
    return f"10.0.0.{index + 1}"


@dataclass(frozen=True)
class RunConfig:
    profile: Profile
    load: Load
    settings: Settings | None  # None: no proxy, every request straight to the engine
    replicas: int = 1
    faults: tuple[Fault, ...] = ()
    seed: int = 0
    drain: float = 60.0  # after the last arrival, longest wait for answers
    sample_interval: float = 1.0  # engine state sampling
    pool: tuple[PoolEngine, ...] = ()  # one proxy in front of these engines (not `profile`)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replicas must be >= 1")
        if self.settings is None and self.replicas != 1:
            raise ValueError("without a proxy there are no replicas")
        if self.pool and (self.settings is None or self.replicas != 1):
            raise ValueError("a pool is one proxy in front of its engines")
        joins_later = any(e.joins > 0 for e in self.pool)
        if joins_later and self.settings is not None and not self.settings.resolve_interval > 0:
            raise ValueError("engines that join later need a resolve interval")


@dataclass(slots=True)
class RequestRecord:
    """One client request. Times from `sent` are what the proxy measures; the client's
    own view adds the time it waited in the proxy's queue."""

    arrival: float
    replica: int
    prompt_tokens: int
    shed: bool = False
    failed: bool = False  # an error answer (502, 503, a cut stream)
    engine: int = 0  # the pool's engine it ended on
    queued: float = 0.0
    sent: float | None = None
    ttft: float | None = None  # first token - sent
    e2e: float | None = None  # last token - sent
    output_tokens: int = 0
    streamed: bool = True
    planned_tokens: int | None = None  # exact output length (ignore_eos); None: drawn

    @property
    def finished(self) -> bool:
        return self.e2e is not None

    @property
    def client_ttft(self) -> float | None:
        """A non-streamed answer's first token reaches its client with the last."""
        ttft = self.ttft if self.streamed else self.e2e
        return None if ttft is None else self.queued + ttft

    @property
    def client_e2e(self) -> float | None:
        return None if self.e2e is None else self.queued + self.e2e

    @property
    def tpot(self) -> float | None:
        """None for a one-token or a whole answer: not judged (`proxy.core.sla`)."""
        if self.e2e is None or self.ttft is None or self.output_tokens < 2 or not self.streamed:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


@dataclass(frozen=True, slots=True)
class TickRecord:
    """One control decision of one replica, with the state it left behind."""

    t: float
    replica: int
    limit: int
    previous_limit: int
    inflight: int
    queued: int
    peak_inflight: int
    fresh: dict[str, float | None]  # the controller's fresh percentile per signal
    cause: str


@dataclass(frozen=True, slots=True)
class EngineRecord:
    t: float
    running: int
    waiting: int
    kv_usage: float
    slowdown: float
    engine: int = 0  # which of a pool's engines


@dataclass
class RunResult:
    config: RunConfig
    requests: list[RequestRecord] = field(default_factory=list)
    ticks: list[TickRecord] = field(default_factory=list)
    engine: list[EngineRecord] = field(default_factory=list)
    preemptions: int = 0
    unfinished: int = 0  # still running when the drain time ran out (cancelled)
    # A pool's events, (time, engine index): members found, requests sent, ejections.
    joins: list[tuple[float, int]] = field(default_factory=list)
    dispatches: list[tuple[float, int]] = field(default_factory=list)
    ejections: list[tuple[float, int, str]] = field(default_factory=list)
    readmissions: list[tuple[float, int, int]] = field(default_factory=list)  # and its limit


class Replica:
    """One proxy instance: exactly the admission objects the server builds."""

    def __init__(self, index: int, settings: Settings, clock: Callable[[], float]) -> None:
        self.index = index
        self.settings = settings
        self.admission, self.alert = factory.admission(settings, clock)
        self.limiter = self.admission.limiter
        self.active: dict[Ticket, Sequence] = {}  # admitted, still generating

    async def control(self) -> None:
        """The server's control loop, with one addition: the engine does not wake
        writers per token here, so each tick first tells the tickets how far their
        sequences got (what the server's relay reports as events arrive)."""
        admission = self.admission
        while True:
            await asyncio.sleep(admission.control.interval)
            for ticket, seq in self.active.items():
                if seq.last_token_at is not None:
                    ticket.progress(seq.output_tokens, seq.last_token_at)
            admission.tick()


class Harness:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        profiles = [e.profile for e in config.pool] or [config.profile]
        self.engines = [
            Engine(profile, seed=config.seed + i, start=self.start)
            for i, profile in enumerate(profiles)
        ]
        self.runners = [
            EngineRunner(
                engine, speed=1.0, stream_interval=_NO_STREAMING_WAKEUPS, clock=self.loop.time
            )
            for engine in self.engines
        ]
        self.engine, self.runner = self.engines[0], self.runners[0]
        self.dead = [False] * len(self.engines)
        self.active: dict[Ticket, Sequence] = {}  # the pool's admitted, still generating
        settings = config.settings
        self.replicas = (
            [Replica(i, settings, self.loop.time) for i in range(config.replicas)]
            if settings is not None and not config.pool
            else []
        )
        self.pool: Pool | None = None
        if config.pool and settings is not None:
            self.pool = Pool(settings, self.loop.time, _pool_specs(config))
        self.result = RunResult(config)

    def now(self) -> float:
        return self.loop.time() - self.start

    async def run(self) -> RunResult:
        for runner in self.runners:
            runner.start()
        background = [self.loop.create_task(self._sample_engine())]
        background += [self.loop.create_task(self._fault(f)) for f in self.config.faults]
        for replica in self.replicas:
            replica.admission.subscribe(_TickRecorder(self, replica.index, replica.limiter))
            background.append(self.loop.create_task(replica.control()))
        if self.pool is not None:
            background += await self._start_pool(self.pool)
        requests: list[asyncio.Task[None]] = []
        try:
            for arrival in self.config.load.arrivals(self.config.seed, self.config.replicas):
                delay = arrival.at - self.now()
                if delay > 0:
                    await asyncio.sleep(delay)
                requests.append(self.loop.create_task(self._request(arrival)))
            if requests:
                _, pending = await asyncio.wait(requests, timeout=self.config.drain)
                self.result.unfinished = len(pending)
        finally:
            for task in [*requests, *background]:
                task.cancel()
            for task in [*requests, *background]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for runner in self.runners:
                await runner.stop()
        self.result.preemptions = sum(e.stats.preemptions for e in self.engines)
        return self.result

    # --- a pool of engines ------------------------------------------------------
    async def _start_pool(self, pool: Pool) -> list[asyncio.Task[None]]:
        pool.watch(_MemberTicks(self))
        settings = pool.settings
        tasks = [self.loop.create_task(self._pool_control(pool))]
        tasks.append(
            self.loop.create_task(pool.probe_forever(self._probe, settings.upstream_probe_interval))
        )
        if pool.sources:
            await pool.resolve_once(self._resolve)
            tasks.append(self.loop.create_task(pool.resolve_forever(self._resolve)))
        for index, engine in enumerate(self.config.pool):
            if engine.dies is not None:
                tasks.append(self.loop.create_task(self._die(index, engine.dies, engine.returns)))
        return tasks

    async def _pool_control(self, pool: Pool) -> None:
        """`Replica.control` for the pool: progress first, then the pool's tick."""
        while True:
            await asyncio.sleep(pool.settings.control_interval)
            for ticket, seq in self.active.items():
                if seq.last_token_at is not None:
                    ticket.progress(seq.output_tokens, seq.last_token_at)
            pool.tick()

    async def _resolve(self, host: str, port: int) -> list[str]:
        """The pool's DNS answer: every engine that has joined by now."""
        now = self.now()
        return [engine_address(i) for i, e in enumerate(self.config.pool) if e.joins <= now]

    async def _probe(self, member: Member) -> bool:
        return not self.dead[self.engine_of(member)]

    def engine_of(self, member: Member) -> int:
        return _engine_index(member.url)

    async def _die(self, index: int, at: float, returns: float | None) -> None:
        await asyncio.sleep(max(0.0, at - self.now()))
        self.dead[index] = True
        self.runners[index].abort_all()  # what it runs is cut
        await self.runners[index].stop()
        if returns is not None:
            await asyncio.sleep(max(0.0, returns - self.now()))
            self.dead[index] = False
            self.runners[index].start()

    async def _pooled(self, record: RequestRecord, pool: Pool) -> None:
        """The server's path (`proxy.server.forward`) with an engine for the HTTP."""
        streamed = self.config.load.streamed
        try:
            pool.check()
            async with pool.acquire(Priority.NORMAL, streamed=streamed) as lease:
                record.queued = lease.queued_seconds
                retried = False  # once, as the server does
                while self.dead[index := self.engine_of(lease.member)]:
                    pool.record(lease.member, Event.CONNECT)  # refused: nothing sent
                    if retried or not lease.fail_over(0.0):
                        record.failed = True
                        lease.ticket.report(
                            _failure(UpstreamErrorKind.CONNECT, streamed, lease.ticket.epoch, 0.0)
                        )
                        return
                    retried = True
                pool.record(lease.member, Event.ANSWERED)
                record.engine = index
                ticket = lease.ticket
                await self._generate(record, ticket, None, index)
                if self.dead[index] or record.e2e is None:  # cut mid-answer
                    record.failed, record.e2e = True, None
                    cut = self.now() - (record.sent or 0.0)
                    ticket.report(
                        _failure(UpstreamErrorKind.STREAM_CUT, streamed, ticket.epoch, cut)
                    )
                    return
                ticket.report(_success(record, ticket.epoch, streamed))
        except Shed:
            record.shed = True
        except UpstreamUnavailable:
            record.failed = True

    async def _request(self, arrival: Arrival) -> None:
        record = RequestRecord(
            arrival.at, arrival.replica, arrival.prompt_tokens, streamed=self.config.load.streamed
        )
        record.planned_tokens = arrival.output_tokens
        self.result.requests.append(record)
        if self.pool is not None:
            await self._pooled(record, self.pool)
            return
        if not self.replicas:
            await self._generate(record)
            return
        replica = self.replicas[arrival.replica]
        try:
            async with replica.admission.acquire(
                Priority.NORMAL, streamed=self.config.load.streamed
            ) as ticket:
                record.queued = ticket.queued_seconds
                await self._generate(record, ticket, replica)
                assert record.e2e is not None
                ticket.report(_success(record, ticket.epoch, self.config.load.streamed))
        except Shed:
            record.shed = True

    async def _generate(
        self,
        record: RequestRecord,
        ticket: Ticket | None = None,
        replica: Replica | None = None,
        engine: int = 0,
    ) -> None:
        load = self.config.load
        exact = record.planned_tokens
        record.sent = sent = self.now()
        runner = self.runners[engine]
        handle = runner.submit(
            record.prompt_tokens,
            exact if exact is not None else load.max_tokens,
            ignore_eos=exact is not None,
        )
        seq = handle.seq
        active = replica.active if replica is not None else self.active
        if ticket is not None:
            active[ticket] = seq
        try:
            dead = self.dead
            await _until(handle, lambda: seq.output_tokens > 0 or seq.done or dead[engine])
            if dead[engine]:
                return
            record.ttft = self.now() - sent
            if ticket is not None and load.streamed:
                ticket.first_token(self.loop.time())
            await _until(handle, lambda: seq.done or dead[engine])
            if dead[engine]:
                return
            record.e2e = self.now() - sent
            record.output_tokens = seq.output_tokens
        finally:
            runner.release(handle)
            if ticket is not None:
                active.pop(ticket, None)

    async def _sample_engine(self) -> None:
        while True:
            await asyncio.sleep(self.config.sample_interval)
            for index, engine in enumerate(self.engines):
                self.result.engine.append(
                    EngineRecord(
                        self.now(),
                        engine.num_running,
                        engine.num_waiting,
                        engine.kv_usage,
                        engine.slowdown,
                        index,
                    )
                )

    async def _fault(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, fault.at - self.now()))
        self.engine.slowdown = fault.slowdown


class _TickRecorder(Listener):
    """Every decision of one replica (a pool: of one member), with the state it left."""

    def __init__(
        self, harness: Harness, index: int, limiter: Limiter, member: Member | None = None
    ) -> None:
        self.harness = harness
        self.index = index
        self.limiter = limiter
        self.member = member

    def ticked(self, tick: Tick) -> None:
        if self.member is not None and not self.member.serving:
            return  # out of rotation: not part of the pool's limit
        limiter = self.limiter
        self.harness.result.ticks.append(
            TickRecord(
                t=self.harness.now(),
                replica=self.index,
                limit=limiter.limit,
                previous_limit=tick.previous_limit,
                inflight=limiter.inflight,
                queued=limiter.queued,
                peak_inflight=tick.observation.peak_inflight,
                fresh=tick.observation.quantiles(tick.percentile),
                cause=tick.decision.cause.value,
            )
        )


class _MemberTicks(PoolListener):
    """Each member's decisions, recorded under its engine's index, and the pool's
    membership, dispatch and ejection events."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.result = harness.result

    def joined(self, member: Member) -> None:
        index = self.harness.engine_of(member)
        member.admission.subscribe(_TickRecorder(self.harness, index, member.limiter, member))
        self.result.joins.append((self.harness.now(), index))

    def dispatched(self, member: Member) -> None:
        self.result.dispatches.append((self.harness.now(), self.harness.engine_of(member)))

    def ejected(self, member: Member, reason: Reason) -> None:
        index = self.harness.engine_of(member)
        self.result.ejections.append((self.harness.now(), index, reason.value))

    def readmitted(self, member: Member) -> None:
        index = self.harness.engine_of(member)
        self.result.readmissions.append((self.harness.now(), index, member.limiter.limit))


def _pool_specs(config: RunConfig) -> tuple[UpstreamSpec, ...]:
    """One DNS name for the pool when engines join later, else one member per engine."""
    if any(e.joins > 0 for e in config.pool):
        return (UpstreamSpec("pool", f"http://{POOL_HOST}:{POOL_PORT}"),)
    return tuple(
        UpstreamSpec(f"engine{i}", f"http://{engine_address(i)}:{POOL_PORT}")
        for i in range(len(config.pool))
    )


def _engine_index(url: str) -> int:
    host = url.split("://", 1)[1].split(":", 1)[0]
    return int(host.rsplit(".", 1)[1]) - 1


def _failure(kind: UpstreamErrorKind, streamed: bool, epoch: int, e2e: float) -> Sample:
    return Sample(
        outcome=Outcome.OVERLOAD, status=None, e2e=e2e, epoch=epoch, streamed=streamed, error=kind
    )


async def _until(handle: SeqHandle, done: Callable[[], bool]) -> None:
    # Clear before checking: a wake-up between the check and the wait is not lost.
    while True:
        handle.event.clear()
        if done():
            return
        await handle.event.wait()


async def simulate(config: RunConfig) -> RunResult:
    """Run one configuration on the running loop (virtual time: see `run`)."""
    return await Harness(config).run()


def run(config: RunConfig) -> RunResult:
    """Run one configuration on a fresh virtual-time loop."""
    from proxy.scenarios.vtime import run_virtual

    return run_virtual(simulate(config))


__all__ = [
    "EngineRecord",
    "Fault",
    "Harness",
    "PoolEngine",
    "Replica",
    "RequestRecord",
    "RunConfig",
    "RunResult",
    "TickRecord",
    "run",
    "simulate",
]


def _success(record: RequestRecord, epoch: int, streamed: bool) -> Sample:
    """The sample of an answer the engine finished, as the server's meter makes it."""
    assert record.e2e is not None
    return Sample(
        outcome=Outcome.SUCCESS,
        status=200,
        e2e=record.e2e,
        ttft=record.ttft,
        output_tokens=record.output_tokens,
        prompt_tokens=record.prompt_tokens,
        epoch=epoch,
        streamed=streamed,
    )
