"""Drives the pure engine in real time on the event loop and wakes response writers.

One task steps the engine while it has work and sleeps on an event while idle. After
each step it asks the pacer how far the engine is ahead of the wall clock and sleeps
only when that exceeds ~1 ms. Writers are not woken per token: a sequence's writer
is woken on its first token, on its last, and otherwise at most once per
`stream_interval` wall seconds (vLLM's --stream-interval does the same in tokens),
and then writes every token accumulated since its previous chunk as one chunk. With
many streams the interval stretches so that all of them together stay under
`max_chunk_rate` chunks per wall second: on 2 cores, the writers (and a proxy
relaying them) would otherwise starve the engine of CPU and slow simulated time.
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

    __slots__ = ("event", "seq")

    def __init__(self, seq: Sequence) -> None:
        self.seq = seq
        self.event = asyncio.Event()
        seq.wake = self.event.set


class EngineRunner:
    def __init__(
        self,
        engine: Engine,
        *,
        speed: float = 1.0,
        stream_interval: float = 0.02,
        max_chunk_rate: float = 2000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stream_interval < 0 or max_chunk_rate <= 0:
            raise ValueError("stream_interval must be >= 0 and max_chunk_rate > 0")
        self.engine = engine
        self.speed = speed
        self.stream_interval = stream_interval
        self.max_chunk_rate = max_chunk_rate
        self._clock = clock
        self.pacer = Pacer(speed)
        self.pacer.rebase(engine.now, clock())
        self._work = asyncio.Event()
        self._handles: dict[int, SeqHandle] = {}  # every sequence a writer waits on
        self._task: asyncio.Task[None] | None = None
        self.steps = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-engine")

    def abort_all(self) -> None:
        """Shutting down: end every sequence a writer waits on, so writers finish now."""
        for handle in list(self._handles.values()):
            self.engine.abort(handle.seq)
            handle.event.set()

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
        handle.seq.wake = None
        self.engine.abort(handle.seq)

    @staticmethod
    def _wake(pending: list[Sequence]) -> None:
        for seq in pending:
            if seq.wake is not None:
                seq.wake()
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
                if not engine.has_work:  # a submit during the sleep above set _work
                    await self._work.wait()
                wall = clock()
                engine.now = max(engine.now, pacer.to_sim(wall))
                pacer.rebase(engine.now, wall)
                continue
            result = engine.step()
            self.steps += 1
            wall = clock()
            interval = max(self.stream_interval, engine.num_running / self.max_chunk_rate)
            for seq in result.emitted:
                if seq.output_tokens == 1 or wall >= seq.next_flush or seq.done:
                    seq.next_flush = wall + interval
                    pending.append(seq)
            wait = pacer.sleep_for(engine.now, wall)
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                await asyncio.sleep(0)  # let writers and new requests in
            if pending:
                self._wake(pending)
