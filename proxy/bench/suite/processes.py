"""The simulator and the proxy, each started as its own `python -m proxy` process
(as deployed) and stopped by process id when the block ends."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from proxy.bench.suite.config import SuiteConfig

ROLES = ("proxy", "simulator", "load generator")
PROJECT_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True, slots=True)
class Targets:
    direct: str  # the simulator's base URL
    proxied: str  # the proxy's data port
    admin: str  # the proxy's admin port
    pids: dict[str, int]  # role -> process id, for /proc readings


class ServiceError(Exception):
    """A service did not come up; one line for the user."""


def _open_log(directory: str, name: str) -> IO[bytes]:
    return Path(directory, f"{name}.log").open("wb")


def _log_text(directory: str, name: str) -> str:
    return Path(directory, f"{name}.log").read_text(errors="replace")


@asynccontextmanager
async def service(
    name: str, args: list[str], ready: str, logs: str, patience: float = 60.0
) -> AsyncIterator[tuple[int, re.Match[str]]]:
    """`python -m proxy ARGS` until the block ends; yields its pid and the match of
    `ready` (a regex) in its output. Stopped with SIGTERM, killed if it lingers."""
    argv = [sys.executable, "-m", "proxy", *args]
    async with spawn(name, argv, ready, logs, patience) as (pid, match):
        assert match is not None  # spawn only returns once `ready` matched
        yield pid, match


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """`argv` run on one CPU (taskset execs it, so the pid stays the command's)."""
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


@asynccontextmanager
async def spawn(
    name: str,
    argv: list[str],
    ready: str | None,
    logs: str,
    patience: float = 60.0,
    ports: tuple[int, ...] = (),
) -> AsyncIterator[tuple[int, re.Match[str] | None]]:
    """Any command until the block ends: ready once `ready` (a regex) appears in its
    output and every port in `ports` accepts a connection (for servers such as nginx
    that say nothing when they listen). Stopped with SIGTERM, killed if it lingers."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PROXY_")}
    with _open_log(logs, name) as log:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=log, stderr=log, cwd=PROJECT_ROOT, env=env
        )
    try:
        deadline = time.monotonic() + patience
        match: re.Match[str] | None = None
        waiting = list(ports)
        while True:
            if ready is not None and match is None:
                match = re.search(ready, _log_text(logs, name))
            if ready is None or match is not None:
                while waiting and await _accepts(waiting[0]):
                    waiting.pop(0)
                if not waiting:
                    break
            if process.returncode is not None or time.monotonic() > deadline:
                tail = _log_text(logs, name).strip().splitlines()[-3:]
                raise ServiceError(f"{name} did not start: {' | '.join(tail) or 'no output'}")
            await asyncio.sleep(0.05)  # polling a log file or a port; bounded by the deadline
        yield process.pid, match
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10.0)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@asynccontextmanager
async def services(config: SuiteConfig) -> AsyncIterator[Targets]:
    """The simulator and a never-binding proxy in front of it, on free ports."""
    async with AsyncExitStack() as stack:
        logs = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-suite-"))
        sim_args = ["sim", "--port", "0", "--profile", config.profile, "--speed", str(config.speed)]
        sim_pid, sim = await stack.enter_async_context(
            service("simulator", sim_args, r"listening on (http://\S+)", logs)
        )
        proxy_args = ["serve", "--upstream", sim[1], "--port", "0", "--admin-port", "0"]
        proxy_args += ["--algorithm", "fixed", "--initial-limit", "1024", "--max-limit", "1024"]
        proxy_args += ["--queue-size", "0", "--log-level", "info"]
        ready = r"forwarding (http://\S+) -> .*admin on (http://[^\s(]+)"
        proxy_pid, proxied = await stack.enter_async_context(
            service("proxy", proxy_args, ready, logs)
        )
        pids = {"proxy": proxy_pid, "simulator": sim_pid, "load generator": os.getpid()}
        yield Targets(sim[1], proxied[1], proxied[2], pids)
