"""The virtual-time loop: waits become jumps of the clock, order and instants kept."""

from __future__ import annotations

import asyncio

import pytest

from proxy.scenarios.vtime import Deadlock, VirtualTimeLoop, run_virtual


def test_sleep_advances_the_clock_by_exactly_the_delay() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(100)
        return before, loop.time()

    before, after = run_virtual(main())
    assert after - before == pytest.approx(100, abs=1e-9)


def test_timers_fire_in_deadline_order_at_their_instants() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []

        async def wake(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            fired.append((name, loop.time()))

        await asyncio.gather(wake("c", 3.0), wake("a", 1.0), wake("b", 2.0), wake("a2", 1.0))
        return fired

    fired = run_virtual(main())
    assert [name for name, _ in fired] == ["a", "a2", "b", "c"]
    assert [at for _, at in fired] == pytest.approx([1.0, 1.0, 2.0, 3.0])


def test_time_stands_still_while_tasks_are_runnable() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(1000):
            await asyncio.sleep(0)
        return loop.time() - start

    assert run_virtual(main()) == 0.0


def test_timeouts_expire_on_virtual_time() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.sleep(3600)
        return loop.time()

    assert run_virtual(main()) == pytest.approx(5.0)


def test_waiting_with_nothing_scheduled_raises_instead_of_hanging() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(Deadlock):
        run_virtual(main())


def test_clock_starts_where_asked() -> None:
    loop = VirtualTimeLoop(start=42.0)
    try:
        assert loop.time() == 42.0
        with pytest.raises(ValueError):
            loop.advance(-1.0)
    finally:
        loop.close()
