"""Is the upstream there? Consecutive connect failures mark it down; while it is
down new requests get 503 at once and a probe brings it back by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp

from proxy.errors import UpstreamUnavailable

log = logging.getLogger("sla_proxy.upstream")


class UpstreamHealth:
    def __init__(
        self,
        down_after: int,
        probe_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._down_after = down_after
        self._probe_interval = probe_interval
        self._clock = clock
        self._failures = 0
        self._last_ok: float | None = None
        self.up = True
        self.changed = asyncio.Event()  # set on every up/down transition (for the probe)

    def check(self) -> None:
        """Raise 503 while the upstream is known to be down."""
        if not self.up:
            raise UpstreamUnavailable(
                "The upstream server is unreachable; retry after the indicated time.",
                retry_after=self._probe_interval,
            )

    def record_ok(self) -> None:
        self._failures = 0
        self._last_ok = self._clock()
        if not self.up:
            log.warning("upstream is reachable again")
            self.up = True
            self.changed.set()

    def record_connect_failure(self) -> None:
        self._failures += 1
        if self.up and self._failures >= self._down_after:
            log.error("upstream unreachable after %d consecutive connect failures", self._failures)
            self.up = False
            self.changed.set()

    def answered_within(self, seconds: float) -> bool:
        return self._last_ok is not None and self._clock() - self._last_ok <= seconds

    async def probe_forever(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """While down, GET /health every probe interval; any HTTP answer means it is back
        (a 5xx from a live server is the server's business, not a connect failure)."""
        while True:
            if self.up:
                self.changed.clear()
                await self.changed.wait()
                continue
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(
                    f"{base_url}/health", timeout=aiohttp.ClientTimeout(total=self._probe_interval)
                ):
                    self.record_ok()
                    continue
            await asyncio.sleep(self._probe_interval)
