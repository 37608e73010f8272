"""A test client: one request that goes through the limiter and holds its permit
until the test tells it to finish (or fail), recording what happened to it."""

from __future__ import annotations

import asyncio
import itertools

from proxy.errors import Shed, ShedReason
from proxy.limiter import Limiter, Permit, Priority


class Boom(Exception):
    """What a request's handler raises when a test asks it to fail."""


class Client:
    def __init__(
        self,
        limiter: Limiter,
        priority: Priority = Priority.NORMAL,
        timeout: float = 1000.0,
        *,
        log: list[Client] | None = None,
        seq: int = 0,
    ) -> None:
        self.priority = priority
        self.timeout = timeout
        self.seq = seq
        self.arrived_at = asyncio.get_running_loop().time()
        self.permit: Permit | None = None
        self.shed: Shed | None = None
        self.served = False
        self.failed = False
        self._finish = asyncio.Event()
        self._fail = False
        self._log = log
        self.task = asyncio.create_task(self._run(limiter))

    async def _run(self, limiter: Limiter) -> None:
        try:
            async with limiter.acquire(self.priority, self.timeout) as permit:
                self.permit = permit
                if self._log is not None:
                    self._log.append(self)
                await self._finish.wait()
                if self._fail:
                    raise Boom
            self.served = True
        except Shed as shed:
            self.shed = shed
        except Boom:
            self.failed = True

    @property
    def reason(self) -> ShedReason | None:
        return None if self.shed is None else self.shed.reason

    @property
    def holding(self) -> bool:
        return self.permit is not None and not self.task.done()

    @property
    def waiting(self) -> bool:
        return self.permit is None and not self.task.done()

    def finish(self, *, fail: bool = False) -> None:
        self._fail = fail
        self._finish.set()


def arrivals(
    limiter: Limiter,
    priorities: list[Priority],
    timeout: float = 1000.0,
    log: list[Client] | None = None,
) -> list[Client]:
    """Clients in the order given; call `settle()` before looking at them."""
    counter = itertools.count()
    return [Client(limiter, p, timeout, log=log, seq=next(counter)) for p in priorities]
