"""An asyncio event loop on virtual time: scenarios run exactly and in seconds.

Time stands still while anything is runnable; when the loop would block waiting for
its next timer, the clock jumps to that timer instead. So `await asyncio.sleep(100)`
returns at once with `loop.time()` 100 s later, timers fire in the same order and at
the same instants as on a real clock, and a run is a pure function of its inputs.

Only for code that does no real I/O: a socket read would never be waited for (the
selector is only polled), and a loop with nothing scheduled raises instead of
hanging. asyncio's own self-pipe is still registered, hence the inner selector.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Every task waits and no timer is scheduled: on a real clock this would hang."""


class _JumpingSelector(selectors.BaseSelector):
    """Polls the real selector without blocking; a wait becomes a jump of the clock."""

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
            raise Deadlock("virtual-time loop would wait forever: nothing is scheduled")
        self._loop.advance(timeout)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`time()` is virtual seconds since the loop was made (starts at `start`)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("virtual time cannot go backwards")
        self._now += seconds


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh virtual-time loop and return its result."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


__all__ = ["Deadlock", "VirtualTimeLoop", "run_virtual"]
