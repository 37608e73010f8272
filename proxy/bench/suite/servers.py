"""The Python servers of the reference sections, each its own process pinned to a
CPU: sla-proxy, the bare passthrough and the paced upstream."""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.bench.suite.processes import pinned, spawn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence


@dataclass(frozen=True, slots=True)
class Server:
    pid: int
    url: str
    admin: str | None = None  # sla-proxy's admin port

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def sla_options(limit: int, extra: Sequence[tuple[str, str]] = ()) -> list[str]:
    """Admission, windows and metrics on; a fixed limit, so nothing is shed below it."""
    options = ["--algorithm", "fixed", "--initial-limit", str(limit)]
    options += ["--max-limit", str(max(limit, 256)), "--log-level", "info"]
    for name, value in extra:
        options += [f"--{name}", value]
    return options


@asynccontextmanager
async def sla_proxy(
    name: str, upstream: str, options: list[str], logs: str, cpu: int | None
) -> AsyncIterator[Server]:
    argv = [sys.executable, "-m", "proxy", "serve", "--upstream", upstream]
    argv += ["--port", "0", "--admin-port", "0", *options]
    ready = r"forwarding (http://\S+) -> .*admin on (http://[^\s(]+)"
    async with spawn(name, pinned(argv, cpu), ready, logs) as (pid, match):
        assert match is not None
        yield Server(pid, match[1], match[2])


@asynccontextmanager
async def bare(name: str, upstream: str, logs: str, cpu: int | None) -> AsyncIterator[Server]:
    argv = [sys.executable, "-m", "proxy.bench.suite.passthrough", upstream]
    async with spawn(name, pinned(argv, cpu), r"listening on (http://\S+)", logs) as (pid, m):
        assert m is not None
        yield Server(pid, m[1])


@asynccontextmanager
async def paced(
    name: str, logs: str, cpu: int | None, interval: float = 0.02, hold: bool = False
) -> AsyncIterator[Server]:
    argv = [sys.executable, "-m", "proxy.bench.suite.paced", "--interval", str(interval)]
    argv += ["--hold"] if hold else []
    async with spawn(name, pinned(argv, cpu), r"listening on (http://\S+)", logs) as (pid, m):
        assert m is not None
        yield Server(pid, m[1])
