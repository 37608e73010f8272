"""SIGTERM drains: what is in flight finishes, nothing new is taken, the process exits 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
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


async def test_sigterm_lets_in_flight_requests_finish(sim: SimHandle) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve",
        "--upstream", sim.url, "--port", "0", "--admin-port", "0", "--shutdown-timeout", "20",
        cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        url = ""
        while not url:  # start-up warnings may come first
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            found = re.findall(r"http://127\.0\.0\.1:\d+", line)
            url = found[0] if found else ""  # the data port comes first
        async with aiohttp.ClientSession() as session:
            long = asyncio.create_task(_post(session, url))
            await eventually(lambda: sim.engine.num_running == 1, what="request running")
            process.send_signal(signal.SIGTERM)
            status, body = await long
            assert status == 200
            assert body["usage"]["completion_tokens"] == 1500  # finished, not cut
        assert await asyncio.wait_for(process.wait(), 30) == 0
        log = (await process.stderr.read()).decode()
        assert "draining: 1 in flight" in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _post(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with session.post(f"{url}/v1/chat/completions", json=LONG) as response:
        return response.status, await response.json()
