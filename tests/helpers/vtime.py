"""The limiter's tests on virtual time (`proxy.scenarios.vtime`), so deadlines and rates
are tested exactly and fast.

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
from collections.abc import Awaitable, Callable

import proxy.scenarios.vtime

# Much shorter than any deadline the tests use, much longer than the loop's resolution.
_SETTLE_STEP = 1e-6


def run_virtual(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main()` to completion on a fresh virtual-time loop."""

    async def checked() -> None:
        await main()
        # Everything a test starts must have ended: a leftover task is a leak.
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, f"tasks left behind: {others}"

    proxy.scenarios.vtime.run_virtual(checked())


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
