"""Two simulators behind one proxy, over real HTTP: both get traffic, their limits
differ when their engines do, killing one gives no 5xx once it is out, and DNS
discovery against a resolver the test controls."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

from proxy.server.app import running_proxy
from proxy.sim.app import running_sim
from proxy.sim.profiles import get_profile
from tests.helpers.metrics import metric
from tests.helpers.polling import eventually
from tests.helpers.settings import SIM_SPEED, proxy_settings
from tests.server.test_adaptation import load

PAYLOAD = {
    "model": "tiny-llama",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 8,
    "ignore_eos": True,
}


async def post(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(f"{url}/v1/chat/completions", json=PAYLOAD) as response:
        await response.read()
        return response.status


async def status(admin: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{admin}/status") as response:
        return json.loads(await response.text())  # type: ignore[no-any-return]


async def test_both_members_serve_and_a_slower_engine_gets_a_lower_limit() -> None:
    speed, limit = 2.0, 8
    profile = get_profile("cpu-tiny")
    target = 3.0 * profile.roofline.decode_step_time(limit, 100) / speed  # as test_adaptation
    async with (
        running_sim(profile="cpu-tiny", speed=speed, seed=3) as fast,
        running_sim(profile="cpu-tiny", speed=speed / 6, seed=4) as slow,
    ):
        config = proxy_settings(
            f"fast={fast.url},slow={slow.url}",
            sla_tpot=target,
            initial_limit=limit,
            max_limit=limit,
            window_seconds=1.0,
            queue_size=64,
        )
        async with running_proxy(config) as proxy, load(proxy.url, 2 * limit + 8):
            pool = proxy.state.pool
            fast_m, slow_m = pool.members
            await eventually(
                lambda: slow_m.limiter.limit <= limit // 2, within=40, what="slow one backs off"
            )
            await eventually(lambda: fast_m.limiter.limit == limit, within=30, what="fast at cap")
            body = await status(proxy.admin_url)
        assert fast_m.requests > 0 and slow_m.requests > 0
        assert [u["name"] for u in body["upstreams"]] == ["fast", "slow"]
        fast_s, slow_s = body["upstreams"]
        assert fast_s["limit"] > slow_s["limit"]
        assert set(fast_s) == {
            "name", "url", "up", "ejected_until", "limit", "inflight", "percentiles",
            "requests", "draining",
        }  # fmt: skip
        assert fast_s["url"] == fast.url and fast_s["up"] is True
        assert fast_s["ejected_until"] is None and fast_s["draining"] is False
        assert set(fast_s["percentiles"]["tpot"]) == {"p50", "p90", "p99"}
        assert body["limit"] == fast_s["limit"] + slow_s["limit"]
        assert metric(proxy.state, "proxy_upstream_requests_total", upstream="slow") > 0
        proxy.state.refresh_gauges()  # what a scrape does first
        assert metric(proxy.state, "proxy_concurrency_limit") == pool.limit
        assert metric(proxy.state, "proxy_upstream_concurrency_limit", upstream="slow") == (
            slow_m.limiter.limit
        )
        assert metric(proxy.state, "proxy_pool_members") == 2


async def test_killing_one_member_gives_no_5xx_to_new_requests() -> None:
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_sim(profile="cpu-tiny", speed=SIM_SPEED))
        b_stack = contextlib.AsyncExitStack()
        b = await b_stack.enter_async_context(running_sim(profile="cpu-tiny", speed=SIM_SPEED))
        config = proxy_settings(
            f"a={a.url},b={b.url}", upstream_probe_interval=0.1, eject_seconds=0.5
        )
        proxy = await stack.enter_async_context(running_proxy(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        pool = proxy.state.pool
        member_a, member_b = pool.members
        before = await asyncio.gather(*(post(session, proxy.url) for _ in range(8)))
        assert set(before) == {200} and member_a.requests > 0 and member_b.requests > 0
        await b_stack.aclose()  # b is gone: refused connections from now on
        after: list[int] = []
        while member_b.up:  # concurrent, so that some go to b until it is out
            after += await asyncio.gather(*(post(session, proxy.url) for _ in range(12)))
            assert len(after) <= 120, "b never ejected"
        assert set(after) == {200}  # a refused connect went on to a, never a 5xx
        assert metric(proxy.state, "proxy_upstream_up", upstream="b") == 0
        assert metric(proxy.state, "proxy_upstream_up", upstream="a") == 1
        assert (
            metric(proxy.state, "proxy_upstream_ejections_total", upstream="b", reason="connect")
            == 1
        )
        assert metric(proxy.state, "proxy_upstream_errors_total", upstream="b", kind="connect") >= 1
        down = (await status(proxy.admin_url))["upstreams"][1]
        assert down["up"] is False and down["ejected_until"] is not None
        served_by_a = member_a.requests
        assert set(await asyncio.gather(*(post(session, proxy.url) for _ in range(8)))) == {200}
        assert member_a.requests == served_by_a + 8  # nothing tried on b any more


async def test_dns_discovery_adds_and_drains_members_from_a_resolver_the_test_controls() -> None:
    answers: dict[str, list[str]] = {"pool.test": ["127.0.0.1"]}
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return list(answers[host])

    async with running_sim(profile="cpu-tiny", speed=SIM_SPEED) as one:
        port = one.port
        async with running_sim(profile="cpu-tiny", speed=SIM_SPEED, host="127.0.0.2", port=port):
            config = proxy_settings(f"vllm=http://pool.test:{port}", resolve_interval=0.1)
            async with (
                running_proxy(config, resolver=resolver) as proxy,
                aiohttp.ClientSession() as session,
            ):
                pool = proxy.state.pool
                assert [m.name for m in pool.members] == [f"vllm@127.0.0.1:{port}"]
                assert await post(session, proxy.url) == 200
                answers["pool.test"] = ["127.0.0.1", "127.0.0.2"]
                await eventually(lambda: len(pool.members) == 2, what="second address joins")
                second = pool.members[1]
                assert second.name == f"vllm@127.0.0.2:{port}"
                codes = await asyncio.gather(*(post(session, proxy.url) for _ in range(12)))
                assert set(codes) == {200} and second.requests > 0
                answers["pool.test"] = ["127.0.0.2"]
                await eventually(lambda: len(pool.members) == 1, what="first drains and leaves")
                assert pool.members == [second]
                assert await post(session, proxy.url) == 200
                assert asked[0] == ("pool.test", port)


async def test_a_burst_of_5xx_takes_a_member_out_and_a_probe_brings_it_back() -> None:
    async with (
        running_sim(profile="cpu-tiny", speed=SIM_SPEED) as a,
        running_sim(profile="cpu-tiny", speed=SIM_SPEED) as b,
    ):
        b.set_faults(error_rate=1.0, error_status=500)
        config = proxy_settings(
            f"a={a.url},b={b.url}",
            eject_server_errors=3,
            eject_seconds=0.2,
            upstream_probe_interval=0.05,
        )
        async with running_proxy(config) as proxy, aiohttp.ClientSession() as session:
            member_b = proxy.state.pool.members[1]
            codes: list[int] = []
            while member_b.up:
                codes += await asyncio.gather(*(post(session, proxy.url) for _ in range(12)))
                assert len(codes) <= 240, "b never ejected"
            # Its answers (the burst, and any sent its way meanwhile) were the upstream's:
            # passed on, never retried.
            assert 3 <= codes.count(500) == member_b.requests
            assert set(await asyncio.gather(*(post(session, proxy.url) for _ in range(12)))) == {
                200
            }
            assert (
                metric(
                    proxy.state,
                    "proxy_upstream_ejections_total",
                    upstream="b",
                    reason="server_errors",
                )
                == 1
            )
            # /health still answers 200, but after a 5xx burst only an answer below 500
            # counts: it does (the fault is on generation only), so it comes back.
            b.clear_faults()
            await eventually(lambda: member_b.up, what="b back after its back-off")
            assert member_b.limiter.limit <= proxy.state.settings.initial_limit
