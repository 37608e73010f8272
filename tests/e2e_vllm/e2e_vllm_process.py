"""A proxy process of a check's own, configured for it, stopped by PID whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from e2e_vllm_support import wait_for

READY_WITHIN = 30.0
STOP_WITHIN = 10.0


@dataclass(frozen=True)
class ProxyProcess:
    url: str
    admin: str
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _healthy(admin: str) -> bool:
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(admin + "/healthz") as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_WITHIN)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def proxy_process(
    upstream: str, options: Sequence[str], log: Path
) -> AsyncIterator[ProxyProcess]:
    """`python -m proxy serve` in front of `upstream` on free ports, ready when yielded."""
    port, admin_port = free_port(), free_port()
    while admin_port == port:
        admin_port = free_port()
    command = [
        sys.executable, "-m", "proxy", "serve",
        "--upstream", upstream, "--host", "127.0.0.1",
        "--port", str(port), "--admin-port", str(admin_port),
        *options,
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
    admin = f"http://127.0.0.1:{admin_port}"
    try:

        async def ready() -> bool:
            if process.returncode is not None:
                return True  # reported below; no point polling a dead process
            return await _healthy(admin)

        await wait_for(ready, within=READY_WITHIN)
        if process.returncode is not None or not await _healthy(admin):
            raise AssertionError(f"proxy {' '.join(command)} did not become ready:\n{_tail(log)}")
        yield ProxyProcess(url=f"http://127.0.0.1:{port}", admin=admin, log=log)
    finally:
        await _stop(process)
