"""The pool on virtual time: one queue, dispatch by headroom, fail-over, ejection,
re-admission and DNS membership (level 1, no HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from proxy.admission import Listener
from proxy.control import Tick
from proxy.core.ejection import Event
from proxy.errors import Shed, UpstreamUnavailable
from proxy.limiter import Priority
from proxy.pool import Lease, Pool
from proxy.settings import UpstreamSpec
from tests.helpers.settings import make_settings
from tests.helpers.vtime import now, settle, virtual_time

TWO = "a=http://10.0.0.1:1,b=http://10.0.0.2:1"


def pool_of(upstream: str = TWO, **overrides: Any) -> Pool:
    values: dict[str, Any] = {"upstream": upstream, "initial_limit": 2, "queue_size": 4}
    values.update(overrides)
    return Pool(make_settings(**values), asyncio.get_running_loop().time)


class Holder:
    """A request holding its lease until released."""

    def __init__(self, pool: Pool, patience: float = 10.0) -> None:
        self.lease: Lease | None = None
        self.error: BaseException | None = None
        self._done = asyncio.Event()
        self.task = asyncio.create_task(self._run(pool, patience))

    async def _run(self, pool: Pool, patience: float) -> None:
        try:
            async with pool.acquire(Priority.NORMAL, patience) as lease:
                self.lease = lease
                await self._done.wait()
        except (Shed, UpstreamUnavailable) as exc:
            self.error = exc

    async def release(self) -> None:
        self._done.set()
        await self.task


@contextlib.asynccontextmanager
async def holders(pool: Pool, count: int) -> AsyncIterator[list[Holder]]:
    held = [Holder(pool) for _ in range(count)]
    await settle()
    try:
        yield held
    finally:
        for h in held:
            await h.release()


@virtual_time
async def test_requests_spread_by_relative_headroom_and_queue_only_when_all_are_full() -> None:
    pool = pool_of()
    a, b = pool.members
    b.limiter.set_limit(4)
    pool.sync()
    async with holders(pool, 7) as held:
        names = [h.lease.member.name if h.lease else None for h in held]
        assert names[:6].count("a") == 2 and names[:6].count("b") == 4
        assert names[6] is None  # both full: it waits in the pool's queue
        assert pool.limiter.queued == 1
        await held[0].release()  # a frees a permit: the queued one takes it at once
        await settle()
        assert held[6].lease is not None and held[6].lease.member is held[0].lease.member  # type: ignore[union-attr]
        assert (a.limiter.inflight, b.limiter.inflight) == (2, 4)
    assert pool.inflight == a.limiter.inflight == b.limiter.inflight == 0


@virtual_time
async def test_never_waits_for_a_member_over_its_limit_while_another_has_room() -> None:
    pool = pool_of()
    a, b = pool.members
    async with holders(pool, 3) as held:
        assert a.limiter.inflight == 2 and b.limiter.inflight == 1
        a.limiter.set_limit(1)  # a just cut: one over its limit
        pool.sync()
        late = Holder(pool)
        await settle()
        assert late.lease is not None and late.lease.member is b
        await late.release()
        del held


@virtual_time
async def test_a_full_pool_sheds_as_one_upstream_does() -> None:
    pool = pool_of(queue_size=0)
    async with holders(pool, 4):
        late = Holder(pool)
        await settle()
        assert isinstance(late.error, Shed)
        await late.release()


@virtual_time
async def test_fail_over_moves_the_request_to_the_other_member_even_at_its_limit() -> None:
    pool = pool_of(initial_limit=1)
    a, b = pool.members
    async with holders(pool, 2) as held:
        first = held[0].lease
        assert first is not None and first.member is a
        pool.record(a, Event.CONNECT)
        assert first.fail_over(0.001)
        assert first.member is b and b.limiter.inflight == 2 and a.limiter.inflight == 0
        assert pool.limiter.limit - pool.inflight == 1  # a's free permit, nobody else's
    assert b.limiter.inflight == 0


@virtual_time
async def test_ejected_members_take_nothing_and_no_member_means_503() -> None:
    pool = pool_of(upstream_down_after=1)
    a, b = pool.members
    pool.record(a, Event.CONNECT)
    assert not a.serving
    async with holders(pool, 2) as held:
        assert [h.lease.member for h in held if h.lease] == [b, b]
    pool.record(b, Event.CONNECT)  # the last one: out as well (connect failures)
    with pytest.raises(UpstreamUnavailable):
        pool.check()


@virtual_time
async def test_readmission_after_the_back_off_restarts_from_a_low_limit() -> None:
    pool = pool_of(upstream_down_after=1, eject_seconds=2.0, initial_limit=3)
    a, _ = pool.members
    a.limiter.set_limit(40)
    pool.record(a, Event.CONNECT)
    pool.probed(a, True)
    assert not a.up  # the other member serves: the back-off holds
    await asyncio.sleep(2.0)
    pool.probed(a, True)
    assert a.up and a.limiter.limit == 3


@virtual_time
async def test_the_probe_loop_probes_only_members_out_of_rotation() -> None:
    pool = pool_of(upstream_down_after=1, eject_seconds=0.5)
    a, b = pool.members
    probed: list[str] = []

    async def probe(member: Any) -> bool:
        probed.append(member.name)
        return True

    pool.record(a, Event.CONNECT)
    task = asyncio.create_task(pool.probe_forever(probe, 0.25))
    await asyncio.sleep(0.6)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert set(probed) == {"a"} and a.up and b.up


@virtual_time
async def test_dns_members_join_drain_without_cut_and_leave_when_done() -> None:
    pool = pool_of("vllm=http://vllm.svc:8000", resolve_interval=1.0)
    answers = [["10.0.0.1"], ["10.0.0.1", "10.0.0.2"], ["10.0.0.2"], OSError("no DNS")]

    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("vllm.svc", 8000)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert pool.members == [] and not pool.serving
    assert set(pool.window_snapshots()) == {"ttft", "tpot", "e2e"}  # /status before any member
    assert pool.limit == 0 and pool.sla.targets == {}
    await pool.resolve_once(resolver)
    assert [m.name for m in pool.members] == ["vllm@10.0.0.1:8000"]
    assert pool.members[0].url == "http://10.0.0.1:8000"
    await pool.resolve_once(resolver)
    first, second = pool.members
    async with holders(pool, 1) as held:
        on = held[0].lease.member  # type: ignore[union-attr]
        assert on is first
        await pool.resolve_once(resolver)  # first gone from DNS: drains
        assert first.draining and first in pool.members and not first.serving
        late = Holder(pool)
        await settle()
        assert late.lease is not None and late.lease.member is second
        await late.release()
    assert pool.members == [second]  # drained: left once its request finished
    await pool.resolve_once(resolver)  # a failed look-up changes nothing
    assert pool.members == [second]


@virtual_time
async def test_a_single_upstream_is_its_own_queue() -> None:
    pool = pool_of("http://10.0.0.1:1")
    (member,) = pool.members
    assert pool.shared and pool.limiter is member.limiter
    assert pool.limiter.queue_size == 4
    async with holders(pool, 1) as held:
        assert held[0].lease is not None and held[0].lease.ticket.permit.queued_seconds == 0
        assert not held[0].lease.fail_over(0.0)  # nowhere else to go
    assert now() >= 0


def test_specs_with_ip_literals_are_static_even_with_discovery() -> None:
    async def main() -> None:
        pool = Pool(
            make_settings(upstream="http://10.0.0.1:1", resolve_interval=5.0),
            asyncio.get_running_loop().time,
            (UpstreamSpec("x", "http://10.0.0.1:1"),),
        )
        assert pool.shared and not pool.sources

    asyncio.run(main())


@virtual_time
async def test_the_pools_tick_is_its_members_summed_for_the_pools_listeners() -> None:
    pool = pool_of(upstream_down_after=1, min_limit=1)
    a, b = pool.members
    b.limiter.set_limit(5)
    heard: list[Tick] = []

    class Ticks(Listener):
        def ticked(self, tick: Tick) -> None:
            heard.append(tick)

    pool.subscribe(Ticks())
    tick = pool.tick()
    assert heard == [tick] and tick.decision.limit == pool.limit == 2 + 5
    assert pool.alert.min_limit == 2  # each serving member's floor
    pool.record(b, Event.CONNECT)
    tick = pool.tick()
    assert tick.decision.limit == pool.limit == a.limiter.limit
    assert pool.alert.min_limit == 1
    assert pool.last is tick
