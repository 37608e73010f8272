"""An asyncio loop on virtual time, so deadlines and rates are tested exactly and fast.

Time stands still while anything is runnable; when the loop would sleep, it jumps to
the next timer instead. So `await asyncio.sleep(5)` returns at once with `loop.time()`
5 s later, and a deadline fires exactly when the clock says, never early or late.

These tests run on their own `asyncio.Runner` rather than through pytest-asyncio's
loop-factory hook, because that hook is seen project-wide and this loop is only for
the limiter's tests.
"""

from __future__ import annotations

import asyncio
import functools
import selectors
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

# Much shorter than any deadline the tests use, much longer than the loop's resolution.
_SETTLE_STEP = 1e-6


class _JumpingSelector(selectors.BaseSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._inner = selectors.DefaultSelector()

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual-time loop would wait forever: nothing is scheduled")
        self._loop.advance(timeout)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run_virtual(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main()` to completion on a fresh virtual-time loop."""

    async def checked() -> None:
        await main()
        # Everything a test starts must have ended: a leftover task is a leak.
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, f"tasks left behind: {others}"

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        runner.run(checked())


def virtual_time(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Decorator: an `async def` test without fixtures, run on virtual time."""

    @functools.wraps(test)
    def wrapper() -> None:
        run_virtual(test)

    return wrapper


async def settle() -> None:
    """Return once nothing else is runnable (the loop only jumps time when idle),
    so every task has reacted to what the test just did. Exact, not a guess."""
    await asyncio.sleep(_SETTLE_STEP)


def now() -> float:
    return asyncio.get_running_loop().time()
