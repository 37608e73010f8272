"""Raw client sockets held open against a server: idle ones (connected, silent),
trickling ones (a request line, then one header byte now and then, as slowloris
does), and whole requests left waiting for their answer. Plain non-blocking sockets,
not asyncio streams: thousands of them should cost this process little."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

SLOW_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def raise_fd_limit(needed: int) -> int:
    """Soft (and, as root, hard) RLIMIT_NOFILE to at least `needed`; children started
    afterwards inherit it. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    target = needed
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:  # raising the hard limit needs root
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            target = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


async def until(
    condition: Callable[[], bool | Awaitable[bool]], within: float, every: float = 0.05
) -> bool:
    """Polls a state the server reaches by itself; False if it did not within `within`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        await asyncio.sleep(every)  # a bounded poll, not synchronisation
    return False


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def connect_many(
    port: int, count: int, first: bytes = b"", server_pid: int | None = None, batch: int = 64
) -> list[socket.socket]:
    """`count` connections, each sending `first` once connected, `batch` at a time.
    With `server_pid`, each batch waits until the server holds that many more open
    files, i.e. has accepted them: a connect completes when the kernel queues it, and a
    burst beyond the listen backlog (aiohttp's default is 128) is dropped and retried
    by the client's SYN timer (1 s, then 3 s), which would time the kernel, not the
    server."""
    loop = asyncio.get_running_loop()
    base = open_fds(server_pid) if server_pid is not None else 0

    async def one() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            if first:
                await loop.sock_sendall(sock, first)
        except OSError:
            sock.close()
            raise
        return sock

    sockets: list[socket.socket] = []
    for start in range(0, count, batch):
        sockets += await asyncio.gather(*(one() for _ in range(min(batch, count - start))))
        if server_pid is not None:
            held = base + len(sockets)
            await until(lambda: open_fds(server_pid) >= held, 10.0, every=0.002)  # noqa: B023
    return sockets


@dataclass(frozen=True, slots=True)
class SocketStates:
    open: int  # connected, nothing received
    answered: int  # the server sent something (an error answer, say)
    closed: int  # the server closed or reset it


def states(sockets: list[socket.socket]) -> SocketStates:
    counts = {"open": 0, "answered": 0, "closed": 0}
    for sock in sockets:
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            counts["open"] += 1
        except OSError:
            counts["closed"] += 1
        else:
            counts["answered" if data else "closed"] += 1
    return SocketStates(**counts)


async def trickle(sockets: list[socket.socket], interval: float, groups: int = 20) -> None:
    """One byte to every socket per `interval`, spread over `groups` slices so the
    server sees a steady drizzle rather than bursts; runs until cancelled."""
    if not sockets:
        return
    slices = [sockets[i::groups] for i in range(groups)]
    while True:
        for part in slices:
            for sock in part:
                with contextlib.suppress(OSError):  # closed by the server: counted later
                    sock.send(b"a")
            await asyncio.sleep(interval / groups)  # the trickle's pace, not a wait


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
