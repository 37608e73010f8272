"""Clients -> proxy replicas -> simulated engine, in one process on one clock.

The objects are the real ones: each replica is the `Limiter` and `ControlLoop` that
`proxy.server.app.create_app` builds (so the same window, controller and alert), and
the engine is the simulator's `Engine` stepped by its `EngineRunner` at speed 1 on
the loop's clock. Only HTTP is left out: an admitted request is submitted to the
engine directly, its TTFT and end-to-end time are measured on the loop's clock from
the moment it is sent (as `proxy.server.forward` measures them), and its `Sample` is
recorded as `ProxyState.record` records one. Run it on `proxy.scenarios.vtime`'s loop and
a ten-minute overload takes seconds, exactly and repeatably.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from proxy import factory
from proxy.admission import Listener, Ticket
from proxy.control import Tick
from proxy.core.outcome import Outcome, Sample
from proxy.errors import Shed
from proxy.limiter import Priority
from proxy.load.arrivals import Arrival, Load
from proxy.settings import Settings
from proxy.sim.engine import Engine
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

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replicas must be >= 1")
        if self.settings is None and self.replicas != 1:
            raise ValueError("without a proxy there are no replicas")


@dataclass(slots=True)
class RequestRecord:
    """One client request. Times from `sent` are what the proxy measures; the client's
    own view adds the time it waited in the proxy's queue."""

    arrival: float
    replica: int
    prompt_tokens: int
    shed: bool = False
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


@dataclass
class RunResult:
    config: RunConfig
    requests: list[RequestRecord] = field(default_factory=list)
    ticks: list[TickRecord] = field(default_factory=list)
    engine: list[EngineRecord] = field(default_factory=list)
    preemptions: int = 0
    unfinished: int = 0  # still running when the drain time ran out (cancelled)


class Replica:
    """One proxy instance: exactly the admission objects the server builds."""

    def __init__(self, index: int, settings: Settings, clock: Callable[[], float]) -> None:
        self.index = index
        self.settings = settings
        self.admission, self.alert = factory.admission(settings, clock)
        self.limiter = self.admission.limiter


class Harness:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.engine = Engine(config.profile, seed=config.seed, start=self.start)
        self.runner = EngineRunner(
            self.engine, speed=1.0, stream_interval=_NO_STREAMING_WAKEUPS, clock=self.loop.time
        )
        settings = config.settings
        self.replicas = (
            [Replica(i, settings, self.loop.time) for i in range(config.replicas)]
            if settings is not None
            else []
        )
        self.result = RunResult(config)

    def now(self) -> float:
        return self.loop.time() - self.start

    async def run(self) -> RunResult:
        self.runner.start()
        background = [self.loop.create_task(self._sample_engine())]
        background += [self.loop.create_task(self._fault(f)) for f in self.config.faults]
        for replica in self.replicas:
            replica.admission.subscribe(_TickRecorder(self, replica))
            background.append(self.loop.create_task(replica.admission.run()))
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
            await self.runner.stop()
        self.result.preemptions = self.engine.stats.preemptions
        return self.result

    async def _request(self, arrival: Arrival) -> None:
        record = RequestRecord(
            arrival.at, arrival.replica, arrival.prompt_tokens, streamed=self.config.load.streamed
        )
        record.planned_tokens = arrival.output_tokens
        self.result.requests.append(record)
        if not self.replicas:
            await self._generate(record)
            return
        replica = self.replicas[arrival.replica]
        try:
            async with replica.admission.acquire(
                Priority.NORMAL, streamed=self.config.load.streamed
            ) as ticket:
                record.queued = ticket.queued_seconds
                await self._generate(record, ticket)
                assert record.e2e is not None
                ticket.report(
                    Sample(
                        outcome=Outcome.SUCCESS,
                        status=200,
                        e2e=record.e2e,
                        ttft=record.ttft,
                        output_tokens=record.output_tokens,
                        prompt_tokens=record.prompt_tokens,
                        epoch=ticket.epoch,
                        streamed=self.config.load.streamed,
                    )
                )
        except Shed:
            record.shed = True

    async def _generate(self, record: RequestRecord, ticket: Ticket | None = None) -> None:
        load = self.config.load
        exact = record.planned_tokens
        record.sent = sent = self.now()
        handle = self.runner.submit(
            record.prompt_tokens,
            exact if exact is not None else load.max_tokens,
            ignore_eos=exact is not None,
        )
        seq = handle.seq
        try:
            await _until(handle, lambda: seq.output_tokens > 0 or seq.done)
            record.ttft = self.now() - sent
            if ticket is not None and load.streamed:
                ticket.first_token(self.loop.time())
            await _until(handle, lambda: seq.done)
            record.e2e = self.now() - sent
            record.output_tokens = seq.output_tokens
        finally:
            self.runner.release(handle)

    async def _sample_engine(self) -> None:
        engine = self.engine
        while True:
            await asyncio.sleep(self.config.sample_interval)
            self.result.engine.append(
                EngineRecord(
                    self.now(),
                    engine.num_running,
                    engine.num_waiting,
                    engine.kv_usage,
                    engine.slowdown,
                )
            )

    async def _fault(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, fault.at - self.now()))
        self.engine.slowdown = fault.slowdown


class _TickRecorder(Listener):
    """Every decision of one replica, with the state it left behind."""

    def __init__(self, harness: Harness, replica: Replica) -> None:
        self.harness = harness
        self.replica = replica

    def ticked(self, tick: Tick) -> None:
        limiter = self.replica.limiter
        self.harness.result.ticks.append(
            TickRecord(
                t=self.harness.now(),
                replica=self.replica.index,
                limit=limiter.limit,
                previous_limit=tick.previous_limit,
                inflight=limiter.inflight,
                queued=limiter.queued,
                peak_inflight=tick.observation.peak_inflight,
                fresh=tick.observation.quantiles(tick.percentile),
                cause=tick.decision.cause.value,
            )
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
    "Replica",
    "RequestRecord",
    "RunConfig",
    "RunResult",
    "TickRecord",
    "run",
    "simulate",
]
