"""The drain: one deadline from SIGTERM for everything in flight on the data port.

While draining, /readyz answers 503 and new requests get 503 with Retry-After (the
listener stays open, so a client is told rather than refused). Requests already in
flight run until the deadline; then each is cut where it stands:

- still before the upstream's answer (queued, waiting for headers): its scope is
  expired, and the client gets a 503 instead;
- relaying an answer: the upstream body is ended with `DrainDeadline`, so the relay
  stops at an event boundary and a stream ends with the SSE error event.

Handlers then get `CUT_GRACE` to write those endings; whatever is still stuck (a client
that does not read) is left to the runner's short shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import aiohttp

log = logging.getLogger("sla_proxy.drain")

CUT_GRACE = 0.25  # seconds for cut handlers to write their last bytes


class DrainDeadline(Exception):
    """Set on an upstream body at the drain deadline."""


class Cut:
    """One in-flight request's handle for the drain."""

    __slots__ = ("fired", "response", "scope")

    def __init__(self, scope: asyncio.Timeout) -> None:
        self.scope = scope
        self.response: aiohttp.ClientResponse | None = None
        self.fired = False

    def relaying(self, response: aiohttp.ClientResponse) -> None:
        """The upstream answered: from now on a cut ends its body instead."""
        self.response = response

    def fire(self) -> None:
        if self.fired:
            return
        self.fired = True
        if self.response is not None:
            self.response.content.set_exception(DrainDeadline())
        else:
            self.scope.reschedule(asyncio.get_running_loop().time())


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self._cuts: set[Cut] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._cuts)

    @contextlib.contextmanager
    def track(self, scope: asyncio.Timeout) -> Iterator[Cut]:
        cut = Cut(scope)
        self._cuts.add(cut)
        self._idle.clear()
        try:
            yield cut
        finally:
            self._cuts.discard(cut)
            if not self._cuts:
                self._idle.set()

    async def run(self, within: float, force: asyncio.Event | None = None) -> None:
        """Drain: returns once nothing is in flight, or `within` seconds from now (or
        when `force` is set) after cutting what is left."""
        self.draining = True
        waiters = [asyncio.ensure_future(self._idle.wait())]
        if force is not None:
            waiters.append(asyncio.ensure_future(force.wait()))
        try:
            await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self._cuts:
            log.warning("drain deadline: cutting %d requests still in flight", len(self._cuts))
            for cut in list(self._cuts):
                cut.fire()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CUT_GRACE):
                    await self._idle.wait()
