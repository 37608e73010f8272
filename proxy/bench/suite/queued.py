"""sla-proxy's memory with a full queue (issue 10's goal: under 200 MB for 10,000
queued requests): a fixed limit of 1 in front of an upstream that holds the one
admitted request, then `queued` whole requests sent on their own connections and
left waiting; RSS from /proc once /status counts them all, and the time the queue
takes to empty when their clients go away."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.bench.suite.clients import with_max_connections
from proxy.bench.suite.payloads import request_body
from proxy.bench.suite.procfs import read_proc
from proxy.bench.suite.servers import paced, sla_proxy
from proxy.bench.suite.sockets import close_all, connect_many, raise_fd_limit, states, until

if TYPE_CHECKING:
    from proxy.bench.suite.refconfig import RefConfig

MIB = 2**20


@dataclass(frozen=True, slots=True)
class QueuedResult:
    target: int  # requests meant to wait
    reached: int  # the most /status counted as queued
    rss_idle_bytes: int  # started, nothing sent
    rss_queued_bytes: int  # with `reached` queued and one held upstream
    hwm_bytes: int  # the peak so far
    fill_seconds: float  # from the first connect until /status counted them
    fill_cpu_seconds: float  # the proxy's CPU meanwhile
    refused: int  # answered or closed while they should have been waiting
    drain_seconds: float | None  # back to 0 queued and 0 in flight once they left
    fd_limit: int
    options: list[str]

    @property
    def kib_per_request(self) -> float | None:
        if not self.reached:
            return None
        return (self.rss_queued_bytes - self.rss_idle_bytes) / 1024 / self.reached


def request_bytes(port: int) -> bytes:
    body = request_body(stream=False)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def measure_queued(
    config: RefConfig, logs: str, cpus: tuple[int | None, ...]
) -> QueuedResult:
    import aiohttp

    server_cpu, client_cpu = cpus
    fd_limit = raise_fd_limit(config.queued + 1024)
    wait = f"{config.queue_wait:g}"
    options = ["--algorithm", "fixed", "--initial-limit", "1", "--min-limit", "1"]
    options += ["--max-limit", "1", "--queue-size", str(config.queued)]
    options += ["--queue-timeout", wait, "--max-queue-timeout", wait, "--log-level", "info"]
    for name, value in with_max_connections(config.proxy_options, config.queued + 256):
        options += [f"--{name}", value]
    async with AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(
            paced("hold-upstream", logs, client_cpu, hold=True)
        )
        proxy = await stack.enter_async_context(
            sla_proxy("sla-proxy-queued", upstream.url, options, logs, server_cpu)
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())
        seen: dict[str, Any] = {"queued": 0, "inflight": 0}

        async def status() -> dict[str, Any]:
            async with session.get(f"{proxy.admin}/status") as response:
                found: dict[str, Any] = await response.json()
            seen["queued"] = max(seen["queued"], int(found["queued"]))
            return found

        idle = read_proc(proxy.pid)
        request = request_bytes(proxy.port)
        admitted = await connect_many(proxy.port, 1, request)
        await until(lambda: _is(status(), inflight=1), 30)
        started, cpu_before = time.monotonic(), read_proc(proxy.pid).cpu_seconds
        waiting = await connect_many(proxy.port, config.queued, request, proxy.pid)
        await until(lambda: _is(status(), queued=config.queued), config.queue_wait)
        fill = time.monotonic() - started
        full = read_proc(proxy.pid)
        fill_cpu = full.cpu_seconds - cpu_before
        found = states(waiting)
        close_all(waiting + admitted)
        left = time.monotonic()
        drained = await until(lambda: _is(status(), queued=0, inflight=0), 60)
        drain = time.monotonic() - left if drained else None
    return QueuedResult(
        config.queued,
        seen["queued"],
        idle.rss_bytes,
        full.rss_bytes,
        full.hwm_bytes,
        fill,
        fill_cpu,
        found.answered + found.closed,
        drain,
        fd_limit,
        options,
    )


async def _is(pending: Any, **expected: int) -> bool:
    found = await pending
    return all(int(found[key]) == value for key, value in expected.items())
