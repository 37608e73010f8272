"""Drives the pure engine in real time on the event loop and wakes response writers.

One task steps the engine while it has work and sleeps on an event while idle. After
each step it asks the pacer how far the engine is ahead of the wall clock and sleeps
only when that exceeds ~1 ms. A streamed sequence's writer is woken as vLLM's output
processor would send it an output (`streaming.due`: first token, last token, and every
`stream_interval` tokens; 1 by default, so one event per token), unless all streams
together would exceed `max_event_rate` events per wall second: then middle events are
held back and merged into the stream's next one (`streaming.EventCap`), logged once,
and counted. A non-streamed sequence's waiter is woken on its first and last token.

A wake-up is published after the pacer's sleep, at the wall time its step ends, with
the number of tokens it releases: the writer writes exactly those, even when the
engine has already run the next step by the time the writer gets the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from proxy.sim.engine import Engine, SeqState, Sequence
from proxy.sim.pacing import Pacer
from proxy.sim.streaming import FIRST_AND_LAST_ONLY, EventCap

log = logging.getLogger("proxy.sim")


class SeqHandle:
    """A request's view of its sequence: engine state, the tokens released to its
    writer so far, and a wake-up event."""

    __slots__ = ("event", "interval", "released", "seq")

    def __init__(self, seq: Sequence, interval: float) -> None:
        self.seq = seq
        self.interval = interval  # tokens per event
        self.released = 0  # tokens the writer may send
        self.event = asyncio.Event()

    @property
    def complete(self) -> bool:
        """Every token is released and the sequence finished (or it was aborted)."""
        seq = self.seq
        if seq.state is SeqState.ABORTED:
            return True
        return seq.state is SeqState.FINISHED and self.released == seq.output_tokens


class EngineRunner:
    def __init__(
        self,
        engine: Engine,
        *,
        speed: float = 1.0,
        stream_interval: float = 1,
        cap: EventCap | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not stream_interval >= 1:
            raise ValueError("stream_interval must be at least 1 token (inf: first and last)")
        self.engine = engine
        self.speed = speed
        self.stream_interval = stream_interval
        self.cap = cap or EventCap()
        self._clock = clock
        self.pacer = Pacer(speed)
        self.pacer.rebase(engine.now, clock())
        self._work = asyncio.Event()
        self._handles: dict[int, SeqHandle] = {}  # every sequence a writer waits on
        self._task: asyncio.Task[None] | None = None
        self._rotor = 0  # where the next step's scan starts, so the cap is shared fairly
        self._warned = False
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
        """An engine that runs no batch (idle, or a static batch still filling) follows
        the wall clock, so arrivals get true times."""
        if not self.engine.running:
            self.engine.now = max(self.engine.now, self.pacer.to_sim(self._clock()))

    def submit(
        self,
        prompt_tokens: int,
        max_tokens: int | None,
        *,
        ignore_eos: bool = False,
        stream: bool = True,
    ) -> SeqHandle:
        self._sync_idle_clock()
        seq = self.engine.add(prompt_tokens, max_tokens, ignore_eos=ignore_eos)
        handle = SeqHandle(seq, self.stream_interval if stream else FIRST_AND_LAST_ONLY)
        self._handles[seq.id] = handle
        self._work.set()
        return handle

    def release(self, handle: SeqHandle) -> None:
        """The writer is done with the sequence; abort it if it is still in the engine."""
        self._handles.pop(handle.seq.id, None)
        self.engine.abort(handle.seq)

    def _collect(
        self, emitted: list[Sequence], wall: float, pending: list[tuple[SeqHandle, int]]
    ) -> None:
        cap, handles = self.cap, self._handles
        cap.refill(wall)
        n = len(emitted)
        start = self._rotor % n if n else 0
        refused_at: int | None = None
        for i in range(n):
            seq = emitted[(start + i) % n]
            handle = handles.get(seq.id)
            if handle is None:
                continue
            tokens, released = seq.output_tokens, handle.released
            finished = seq.state is SeqState.FINISHED
            # `due` inlined: this loop runs once per token of every running sequence.
            if released and not finished and tokens - released < handle.interval:
                continue
            if not cap.admit(essential=finished or released == 0):
                if refused_at is None:
                    refused_at = (start + i) % n
                continue
            if released:
                cap.merged(tokens - released, handle.interval, finished)
            pending.append((handle, tokens))
        if refused_at is not None:
            self._rotor = refused_at
            if not self._warned:
                self._warned = True
                log.warning(
                    "streams exceed %.0f events per second: merging tokens into fewer "
                    "events (counted in sim_coalesced_events_total; see --max-event-rate)",
                    cap.rate,
                )

    @staticmethod
    def _wake(pending: list[tuple[SeqHandle, int]]) -> None:
        for handle, tokens in pending:
            handle.released = tokens
            handle.event.set()
        pending.clear()

    async def _wait_for_batch(self, pending: list[tuple[SeqHandle, int]]) -> None:
        """Sleep until the engine's next batch is due or a new request may complete it."""
        engine, pacer = self.engine, self.pacer
        self._wake(pending)
        self._work.clear()
        launch = engine.launch_at
        if launch is None:  # nothing waits: cannot happen after an empty step with work
            return
        timeout = max(0.0, pacer.to_wall(launch) - self._clock())
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            engine.now = max(engine.now, launch)  # exactly due, whatever the rounding
        wall = self._clock()
        engine.now = max(engine.now, pacer.to_sim(wall))
        pacer.rebase(engine.now, wall)

    async def _run(self) -> None:
        engine, pacer, clock = self.engine, self.pacer, self._clock
        pending: list[tuple[SeqHandle, int]] = []
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
            if not result.scheduled:  # static batching: the next batch is not due yet
                await self._wait_for_batch(pending)
                continue
            self.steps += 1
            wall = clock()
            self._collect(result.emitted, wall, pending)
            wait = pacer.sleep_for(engine.now, wall)
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                await asyncio.sleep(0)  # let writers and new requests in
            if pending:
                self._wake(pending)
