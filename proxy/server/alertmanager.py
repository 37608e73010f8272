"""Pushing the capacity alert straight to Alertmanager (`POST /api/v2/alerts`).

The proxy knows first when demand exceeds capacity, so it need not wait for a
Prometheus scrape and rule evaluation. Alertmanager is an optional dependency:
an unreachable one must never slow or break serving, so a push has a bounded
timeout, never raises, runs in the background with at most one in flight, and its
failures are logged once per change (not once per tick) and counted.

Like Prometheus, a firing alert is re-sent while active with an `endsAt` a few
re-send intervals ahead: if the proxy dies mid-episode, Alertmanager resolves the
alert by itself instead of paging forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp

log = logging.getLogger("sla_proxy.alertmanager")

ALERT_NAME = "SLAProxyCapacityExceeded"
API_PATH = "/api/v2/alerts"
# Alertmanager rejects an alert whose end is not after its start.
_MIN_DURATION = timedelta(milliseconds=1)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AlertPayload:
    """One alert as Alertmanager's v2 API takes it (a `postableAlert`)."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": _rfc3339(self.starts_at),
        }
        if self.ends_at is not None:
            body["endsAt"] = _rfc3339(max(self.ends_at, self.starts_at + _MIN_DURATION))
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body


def alerts_url(url: str) -> str:
    """Alertmanager's base URL (or the full API URL) to the alerts endpoint."""
    base = url.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


class AlertmanagerClient:
    """Posts alerts; `push` answers whether Alertmanager took them, and never raises
    (cancellation excepted: that is the caller's control flow, not a push failure)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        timeout: float = 2.0,
        on_result: Callable[[str], None] = lambda result: None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._session = session
        self.url = alerts_url(url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._on_result = on_result
        self._reachable: bool | None = None  # None until the first push

    async def push(self, alert: AlertPayload) -> bool:
        error = ""
        try:
            async with self._session.post(
                self.url, json=[alert.to_json()], timeout=self._timeout
            ) as response:
                if response.status < 300:
                    await response.read()
                else:
                    error = f"HTTP {response.status}: {(await response.text())[:200]}"
        except TimeoutError:
            error = f"no answer within {self._timeout.total}s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._report(error)
        return not error

    def _report(self, error: str) -> None:
        ok = not error
        self._on_result("ok" if ok else "error")
        if ok and self._reachable is False:
            log.info("alertmanager %s reachable again", self.url)
        elif not ok and self._reachable is not False:
            log.warning("alertmanager %s push failed (%s); will retry quietly", self.url, error)
        self._reachable = ok


class PushClient(Protocol):
    """What the pusher needs of a client (AlertmanagerClient, or a fake in tests)."""

    async def push(self, alert: AlertPayload) -> bool: ...


@dataclass
class _Episode:
    """One firing period: its start is the alert's identity in Alertmanager."""

    starts_at: datetime
    resolved: bool = False


@dataclass(frozen=True, slots=True)
class _Push:
    payload: AlertPayload
    episode: _Episode
    resolves: bool


@dataclass
class AlertPusher:
    """Turns the per-tick alert state into pushes: firing when it starts, re-sent every
    `resend_interval` while active, `endsAt` once it is over (retried until taken).

    `update` is synchronous and cheap, so the control loop can call it every tick;
    the push itself runs as a background task, at most one at a time, and a newer
    state waiting behind a slow push replaces an older one.
    """

    client: PushClient
    labels: Mapping[str, str] = field(default_factory=dict)
    generator_url: str = ""
    resend_interval: float = 60.0
    severity: str = "critical"
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        if self.resend_interval <= 0:
            raise ValueError("resend_interval must be positive")
        self._episode: _Episode | None = None
        self._last_attempt = float("-inf")
        self._last_was_resolution = False
        self._inflight: asyncio.Task[None] | None = None
        self._waiting: _Push | None = None

    @property
    def busy(self) -> bool:
        """A push is running (or queued behind the running one)."""
        return self._inflight is not None

    def update(
        self,
        active: bool,
        summary: str,
        description: str,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        now = self.clock()
        due = now - self._last_attempt >= self.resend_interval
        episode = self._episode
        if active:
            if episode is None or episode.resolved:
                episode = self._episode = _Episode(self.wall_clock())
            elif not due:
                return
            # endsAt ahead of now: Alertmanager resolves the alert itself if we vanish.
            ends_at = self.wall_clock() + timedelta(seconds=4 * self.resend_interval)
        elif episode is not None and not episode.resolved:
            if self._last_was_resolution and not due:
                return  # a resolution is on its way or failed recently: retry when due
            ends_at = self.wall_clock()
        else:
            return
        self._last_attempt = now
        self._last_was_resolution = not active
        payload = AlertPayload(
            labels={
                **self.labels,
                **(labels or {}),
                "alertname": ALERT_NAME,
                "severity": self.severity,
            },
            annotations={"summary": summary, "description": description},
            starts_at=episode.starts_at,
            ends_at=ends_at,
            generator_url=self.generator_url,
        )
        self._submit(_Push(payload, episode, resolves=not active))

    def _submit(self, push: _Push) -> None:
        if self._inflight is not None:
            self._waiting = push  # the newest state is the only one worth sending
            return
        self._inflight = asyncio.get_running_loop().create_task(
            self._run(push), name="alertmanager-push"
        )

    async def _run(self, push: _Push) -> None:
        next_push: _Push | None = push
        while next_push is not None:
            if await self.client.push(next_push.payload) and next_push.resolves:
                next_push.episode.resolved = True
            next_push, self._waiting = self._waiting, None
        self._inflight = None

    async def wait_idle(self) -> None:
        """Until no push is running or queued (tests and orderly shutdown)."""
        while self._inflight is not None:
            await asyncio.shield(self._inflight)

    async def aclose(self) -> None:
        """Stop a push in flight; a firing alert then ends by its own `endsAt`."""
        task, self._inflight, self._waiting = self._inflight, None, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
