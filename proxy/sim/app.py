"""Simulator app factory and an in-process server for tests, benchmarks and scenarios.

config = SimConfig(profile="cpu-tiny", speed=10, seed=1)
app = create_sim_app(config)              # aiohttp Application
state = app[SIM_KEY]                      # SimState: .engine, .runner, .faults

async with running_sim(profile="h100-llama3-8b", speed=20, seed=0) as sim:
    sim.url                               # "http://127.0.0.1:<free port>"
    sim.engine.num_running                # also num_waiting, kv_usage, stats.preemptions
    sim.set_faults(slowdown=2.0)          # same validation as POST /sim/faults
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.sim.batching import CONTINUOUS, Batching
from proxy.sim.engine import Engine
from proxy.sim.faults import Faults
from proxy.sim.metrics import EngineCollector, StreamCollector
from proxy.sim.profiles import DEFAULT_PROFILE, Profile, get_profile
from proxy.sim.routes import SIM_KEY, SimState, add_routes, faults_middleware
from proxy.sim.runner import EngineRunner
from proxy.sim.streaming import MAX_EVENT_RATE, EventCap

__all__ = ["SIM_KEY", "SimConfig", "SimHandle", "SimState", "create_sim_app", "running_sim"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    profile: str | Profile = DEFAULT_PROFILE
    speed: float = 1.0  # 10 runs ten times faster than real time
    seed: int = 0
    stream_interval: int = 1  # tokens per SSE event, as vLLM's --stream-interval
    max_event_rate: float = MAX_EVENT_RATE  # all streams, per wall second (CPU guard)
    batching: Batching = CONTINUOUS

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.stream_interval < 1:
            raise ValueError("stream_interval must be at least 1 token")
        if self.max_event_rate <= 0:
            raise ValueError("max_event_rate must be positive")

    def resolved_profile(self) -> Profile:
        return self.profile if isinstance(self.profile, Profile) else get_profile(self.profile)


def create_sim_app(config: SimConfig | None = None) -> web.Application:
    """The simulator as an aiohttp app. Serve it with `handler_cancellation=True` (as
    `running_sim` and the CLI do) so that a client leaving a non-streamed request
    aborts its sequence; streamed requests notice on their next write either way."""
    config = config or SimConfig()
    profile = config.resolved_profile()
    app = web.Application(middlewares=[faults_middleware])
    engine = Engine(profile, seed=config.seed, batching=config.batching)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(EngineCollector(engine, profile.served_model_name))
    cap = EventCap(config.max_event_rate)
    registry.register(StreamCollector(cap))

    async def engine_task(app: web.Application) -> AsyncIterator[None]:
        # The runner needs the running loop, so it is built here rather than above.
        runner = EngineRunner(
            engine, speed=config.speed, stream_interval=config.stream_interval, cap=cap
        )
        app[SIM_KEY] = SimState(engine, runner, registry, random.Random(config.seed ^ 0x5EED))
        runner.start()
        yield
        await runner.stop()

    async def on_shutdown(app: web.Application) -> None:
        # Release hanging and running requests before connections are closed.
        app[SIM_KEY].closing.set()
        app[SIM_KEY].runner.abort_all()

    app.cleanup_ctx.append(engine_task)
    app.on_shutdown.append(on_shutdown)
    add_routes(app)
    return app


@dataclass(frozen=True, slots=True)
class SimHandle:
    url: str
    port: int
    app: web.Application

    @property
    def state(self) -> SimState:
        return self.app[SIM_KEY]

    @property
    def engine(self) -> Engine:
        return self.app[SIM_KEY].engine

    def set_faults(self, **fields: object) -> Faults:
        state = self.state
        state.set_faults(state.faults.merged(fields))
        return state.faults

    def clear_faults(self) -> None:
        self.state.set_faults(Faults())


@asynccontextmanager
async def running_sim(
    profile: str | Profile = DEFAULT_PROFILE,
    speed: float = 1.0,
    seed: int = 0,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    stream_interval: int = 1,
    max_event_rate: float = MAX_EVENT_RATE,
    batching: Batching = CONTINUOUS,
) -> AsyncIterator[SimHandle]:
    """Serve a simulator on `host:port` (0 picks a free port) for the block's duration."""
    config = SimConfig(
        profile,
        speed,
        seed,
        stream_interval=stream_interval,
        max_event_rate=max_event_rate,
        batching=batching,
    )
    app = create_sim_app(config)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        bound = int(runner.addresses[0][1])
        yield SimHandle(f"http://{host}:{bound}", bound, app)
    finally:
        await runner.cleanup()
