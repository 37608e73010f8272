"""Bounded waits on a body being received: at most `idle` seconds of silence in any one
read (the upstream's answer: `--idle-read-timeout`), on one timer per body.

A timer per read (`asyncio.timeout` around each `readany`) costs a timer handle and a
context manager every chunk, which for a stream is every token. Here a read that finds
data already buffered (most reads of a small answer) sets no timer at all; once a read
has had to wait, the body's one timer is armed, and from then on a read only notes its
deadline (one clock reading). The timer is moved only when it fires: early (the
deadline moved on since), it re-arms for the deadline that holds then; past the
deadline of a read still waiting, it ends that read with `IdleTimeout`, set on the
reader as the drain sets `DrainDeadline`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import StreamReader


class IdleTimeout(Exception):
    """Nothing arrived for the idle timeout while a read waited."""


class IdleWatch:
    """`await watch.read()`: the next bytes of `reader` (b"" at its end); `close()` when
    done with the body (the relay's `finally`), which disarms the timer. `before_wait`
    is called once, before the first read that has to wait (the relay sends its
    response headers then, so that otherwise they go out with the first bytes)."""

    __slots__ = ("_before_wait", "_deadline", "_handle", "_loop", "_reader", "idle")

    def __init__(
        self, reader: StreamReader, idle: float, before_wait: Callable[[], None] | None = None
    ) -> None:
        self._reader = reader
        self._before_wait = before_wait
        self.idle = idle
        self._loop = asyncio.get_running_loop()
        self._deadline: float | None = None  # of the read waiting now, on the loop's clock
        self._handle: asyncio.TimerHandle | None = None

    async def read(self) -> bytes:
        reader = self._reader
        if self._handle is None:  # no read has waited yet: maybe none will
            chunk = reader.read_nowait()  # raises what the reader was ended with, as readany
            if chunk or reader.at_eof():
                return chunk
            if self._before_wait is not None:
                self._before_wait()
                self._before_wait = None
            self._deadline = self._loop.time() + self.idle
            self._handle = self._loop.call_at(self._deadline, self._check)
        else:  # a stream: most reads wait, so no look first, only the deadline noted
            self._deadline = self._loop.time() + self.idle
        try:
            return await reader.readany()
        finally:
            self._deadline = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        now = self._loop.time()
        deadline = self._deadline
        if deadline is not None and now >= deadline:
            self._handle = None
            self._reader.set_exception(IdleTimeout())
            return
        # Not waiting (the relay is writing to its client): no read that starts later
        # can end before now + idle. Waiting, but since less than idle: its deadline.
        self._handle = self._loop.call_at(
            now + self.idle if deadline is None else deadline, self._check
        )
