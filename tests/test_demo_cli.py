"""`sla-proxy run` (what `make run` starts) tells where the live page is, and it is there."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys

import aiohttp
import pytest


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    with contextlib.ExitStack() as stack:
        for sock in sockets:
            stack.enter_context(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@pytest.mark.slow
async def test_run_prints_the_live_page_address_and_serves_it() -> None:
    upstream, port, admin = free_ports(3)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "run", "--no-load", "--profile", "cpu-tiny",
        "--upstream-port", str(upstream), "--port", str(port), "--admin-port", str(admin),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        address = None
        while address is None:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert line, "sla-proxy run ended before it printed the live page"
            if line.startswith("Live page:"):
                address = next(word for word in line.split() if word.startswith("http"))
        assert address == f"http://127.0.0.1:{admin}/"
        async with aiohttp.ClientSession() as session, session.get(address) as response:
            assert response.status == 200 and response.content_type == "text/html"
    finally:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.communicate(), 30)
        if process.returncode is None:
            process.kill()
            await process.wait()
