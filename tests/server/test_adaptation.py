"""Integration: through the real proxy and simulator, the limit comes down when the
engine slows down (a fault injected at run time) and goes back up when it recovers."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from proxy.server.app import running_proxy
from proxy.sim.app import SimHandle, running_sim
from proxy.sim.profiles import get_profile
from tests.helpers.metrics import metric
from tests.helpers.polling import eventually
from tests.helpers.settings import proxy_settings

SPEED = 2.0
CLIENTS = 12
LIMIT = 8


async def test_limit_follows_a_slowdown_down_and_back_up() -> None:
    profile = get_profile("cpu-tiny")
    # Wall-clock TPOT at the limit, as the proxy will measure it; the SLA sits well
    # between the healthy engine and the one slowed down 6x, so a busy machine's
    # scheduling noise cannot pass for either.
    healthy_tpot = profile.roofline.decode_step_time(LIMIT, 100) / SPEED
    target = 3.0 * healthy_tpot
    async with running_sim(profile="cpu-tiny", speed=SPEED, seed=3) as sim:
        config = proxy_settings(
            sim.url,
            sla_tpot=target,
            initial_limit=LIMIT,
            min_limit=1,
            max_limit=LIMIT,
            control_interval=0.05,
            window_seconds=1.0,
            window_min_samples=5,
            queue_size=64,
        )
        async with running_proxy(config) as proxy, load(proxy.url, CLIENTS):
            limiter = proxy.state.admission.limiter
            await eventually(
                lambda: (
                    metric(proxy.state, "proxy_sla_requests_total", signal="all", result="met")
                    >= 30
                ),
                within=30,
                what="warm-up",
            )
            await eventually(lambda: limiter.limit == LIMIT, within=30, what="healthy at cap")

            slow(sim, 6.0)
            await eventually(lambda: limiter.limit <= LIMIT // 2, within=30, what="backed off")

            sim.clear_faults()
            await eventually(lambda: limiter.limit >= LIMIT - 1, within=30, what="recovered")

        def changes(direction: str, cause: str) -> float:
            return metric(
                proxy.state, "proxy_limit_changes_total", direction=direction, cause=cause
            )

        assert changes("down", "sla_breach") >= 1
        assert changes("up", "headroom") >= 1


def slow(sim: SimHandle, factor: float) -> None:
    sim.set_faults(slowdown=factor)


@contextlib.asynccontextmanager
async def load(url: str, clients: int):  # type: ignore[no-untyped-def]
    """Closed-loop clients streaming short fixed-length answers until the block ends."""
    payload = {
        "model": "tiny-llama",
        "messages": [{"role": "user", "content": "Count to sixteen."}],
        "max_tokens": 16,
        "ignore_eos": True,
        "stream": True,
    }

    async def client(session: aiohttp.ClientSession) -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(f"{url}/v1/chat/completions", json=payload) as response:
                    await response.read()

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
