"""SIGTERM drains, against a real `python -m proxy serve` and real signals: what is in
flight finishes; /readyz and new requests answer 503 at once (the listener stays
open); at the one deadline streams end with the SSE error event and waiting requests
get 503; the process exits 0. A second signal exits at once.

The hang guards below are far above what the drain takes (measured and printed:
`pytest -s`); they only stop a hung test, they are not the property."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from proxy.sim.app import SimHandle
from tests.helpers.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
LONG = {
    "model": "tiny-llama",
    "messages": [{"role": "user", "content": "a long answer please"}],
    "max_tokens": 1500,  # ~0.6 s at the fixture's speed: surely still running
    "ignore_eos": True,
}


class Served:
    def __init__(self, process: asyncio.subprocess.Process, url: str, admin: str) -> None:
        self.process, self.url, self.admin = process, url, admin

    async def exit_after(self, sig: signal.Signals, within: float) -> tuple[int, float]:
        """Send `sig`; the exit code and the seconds until the process was gone."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), within)
        return code, time.monotonic() - sent


@asynccontextmanager
async def serve(sim: SimHandle, *args: str) -> AsyncIterator[Served]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve",
        "--upstream", sim.url, "--port", "0", "--admin-port", "0", *args,
        cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        found: list[str] = []
        while not found:  # start-up warnings may come first
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            # "forwarding DATA -> UPSTREAM; admin on ADMIN ..."
            found = re.findall(r"http://127\.0\.0\.1:\d+", line)
        url, _, admin = found
        yield Served(process, url, admin)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def status_of(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as response:
        await response.read()
        return response.status


async def test_sigterm_lets_in_flight_requests_finish(sim: SimHandle) -> None:
    async with serve(sim, "--shutdown-timeout", "20") as proxy:
        async with aiohttp.ClientSession() as session:
            long = asyncio.create_task(_post(session, proxy.url, LONG))
            await eventually(lambda: sim.engine.num_running == 1, what="request running")
            proxy.process.send_signal(signal.SIGTERM)
            status, body = await long
            assert status == 200
            assert body["usage"]["completion_tokens"] == 1500  # finished, not cut
        code = await asyncio.wait_for(proxy.process.wait(), 30)
        assert proxy.process.stderr is not None
        log = (await proxy.process.stderr.read()).decode()
    assert code == 0
    assert "draining: 1 in flight" in log


async def test_at_the_deadline_streams_end_with_an_error_and_waiting_requests_get_503(
    sim: SimHandle,
) -> None:
    sim.set_faults(slowdown=200.0)  # a 1500-token answer now takes about two minutes
    async with serve(sim, "--shutdown-timeout", "2") as proxy, aiohttp.ClientSession() as session:
        stream = asyncio.create_task(_stream(session, proxy.url))
        whole = asyncio.create_task(_post(session, proxy.url, LONG))  # headers at its end
        await eventually(lambda: sim.engine.num_running == 2, what="both running")
        code_task = asyncio.create_task(proxy.exit_after(signal.SIGTERM, within=30))
        await eventually(
            lambda: _draining(session, proxy.admin), within=10, what="/readyz answers 503"
        )
        async with session.post(f"{proxy.url}/v1/chat/completions", json=LONG) as refused:
            assert refused.status == 503  # told, not "connection refused"
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.headers["Connection"] == "close"
        events = await stream
        status, body = await whole
        code, took = await code_task
    assert events[0]["choices"]  # content was streaming before the deadline
    assert events[-1]["error"]["code"] == "shutting_down"
    assert (status, body["error"]["code"]) == (503, "upstream_unavailable")
    assert code == 0
    print(f"\nexit {took:.2f} s after SIGTERM with --shutdown-timeout 2")


async def test_a_second_signal_exits_at_once(sim: SimHandle) -> None:
    sim.set_faults(slowdown=200.0)
    async with serve(sim, "--shutdown-timeout", "600") as proxy, aiohttp.ClientSession() as session:
        stream = asyncio.create_task(_stream(session, proxy.url))
        await eventually(lambda: sim.engine.num_running == 1, what="stream running")
        proxy.process.send_signal(signal.SIGTERM)
        await eventually(lambda: _draining(session, proxy.admin), within=10, what="draining")
        code, took = await proxy.exit_after(signal.SIGINT, within=20)  # not 600 s
        stream.cancel()
    assert code == 128 + signal.SIGINT
    print(f"\nexit {took:.2f} s after the second signal")


async def _draining(session: aiohttp.ClientSession, admin: str) -> bool:
    return await status_of(session, f"{admin}/readyz") == 503


async def _post(
    session: aiohttp.ClientSession, url: str, payload: dict[str, object]
) -> tuple[int, dict[str, object]]:
    async with session.post(f"{url}/v1/chat/completions", json=payload) as response:
        return response.status, await response.json()


async def _stream(session: aiohttp.ClientSession, url: str) -> list[dict[str, object]]:
    events = []
    payload = {**LONG, "stream": True}
    async with session.post(f"{url}/v1/chat/completions", json=payload) as response:
        async for line in response.content:
            if line.startswith(b"data: {"):
                events.append(json.loads(line[6:]))
    return events
