"""Drives the pure engine in real time on the event loop and wakes response writers.

One task steps the engine while it has work and sleeps on an event while idle. After
each step it asks the pacer how far the engine is ahead of the wall clock and sleeps
only when that exceeds ~1 ms. Writers are not woken per token: a sequence's writer
is woken on its first token, on its last, and otherwise at most once per
`stream_interval` wall seconds (vLLM's --stream-interval does the same), and then
writes every token accumulated since its previous chunk as one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from proxy.sim.engine import Engine, Sequence
from proxy.sim.pacing import Pacer


class SeqHandle:
    """A request's view of its sequence: the engine state plus a wake-up event."""

    __slots__ = ("event", "next_flush", "seq")

    def __init__(self, seq: Sequence) -> None:
        self.seq = seq
        self.event = asyncio.Event()
        self.next_flush = 0.0


class EngineRunner:
    def __init__(
        self,
        engine: Engine,
        *,
        speed: float = 1.0,
        stream_interval: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stream_interval < 0:
            raise ValueError("stream_interval must be >= 0")
        self.engine = engine
        self.speed = speed
        self.stream_interval = stream_interval
        self._clock = clock
        self.pacer = Pacer(speed)
        self.pacer.rebase(engine.now, clock())
        self._work = asyncio.Event()
        self._handles: dict[int, SeqHandle] = {}
        self._task: asyncio.Task[None] | None = None
        self.steps = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for handle in self._handles.values():
            handle.event.set()

    def _sync_idle_clock(self) -> None:
        """An idle engine's clock follows the wall clock, so arrivals get true times."""
        if not self.engine.has_work:
            self.engine.now = max(self.engine.now, self.pacer.to_sim(self._clock()))

    def submit(
        self, prompt_tokens: int, max_tokens: int | None, *, ignore_eos: bool = False
    ) -> SeqHandle:
        self._sync_idle_clock()
        seq = self.engine.add(prompt_tokens, max_tokens, ignore_eos=ignore_eos)
        handle = SeqHandle(seq)
        self._handles[seq.id] = handle
        self._work.set()
        return handle

    def release(self, handle: SeqHandle) -> None:
        """The writer is done with the sequence; abort it if it is still in the engine."""
        self._handles.pop(handle.seq.id, None)
        self.engine.abort(handle.seq)

    def _wake(self, pending: list[Sequence]) -> None:
        handles = self._handles
        for seq in pending:
            handle = handles.get(seq.id)
            if handle is not None:
                handle.event.set()
        pending.clear()

    async def _run(self) -> None:
        engine, pacer, clock = self.engine, self.pacer, self._clock
        pending: list[Sequence] = []
        while True:
            if not engine.has_work:
                wait = pacer.sleep_for(engine.now, clock())
                if wait > 0:
                    await asyncio.sleep(wait)
                self._wake(pending)
                self._work.clear()
                await self._work.wait()
                wall = clock()
                engine.now = max(engine.now, pacer.to_sim(wall))
                pacer.rebase(engine.now, wall)
                continue
            result = engine.step()
            self.steps += 1
            wall = clock()
            interval = self.stream_interval
            for seq in result.emitted:
                handle = self._handles.get(seq.id)
                if handle is None:
                    continue
                if seq.output_tokens == 1 or seq.done or wall >= handle.next_flush:
                    handle.next_flush = wall + interval
                    pending.append(seq)
            wait = pacer.sleep_for(engine.now, wall)
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                await asyncio.sleep(0)  # let writers and new requests in
            if pending:
                self._wake(pending)
