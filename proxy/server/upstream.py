"""aiohttp's side of the pool's health and discovery: the /health probe of a member
out of rotation, the address look-up behind `--resolve-interval`, and the first
member's health seen as one upstream's (what `/readyz` and older callers ask)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import aiohttp

from proxy.core.ejection import Event
from proxy.pool import Member, Pool, Prober, Resolver


def prober(session: Callable[[], aiohttp.ClientSession], timeout: float) -> Prober:
    """GET /health; any HTTP answer means it is there (`Member.probe_ok` decides)."""

    async def probe(member: Member) -> bool:
        try:
            async with session().get(
                f"{member.url}/health", timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                return member.probe_ok(response.status)
        except (aiohttp.ClientError, TimeoutError):
            return False

    return probe


def system_resolver() -> Resolver:
    """The host's resolver (getaddrinfo): every TCP address, in the order given."""

    async def resolve(host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    return resolve


class UpstreamHealth:
    """One member's health in the words of a single upstream."""

    def __init__(self, pool: Pool, member: Member) -> None:
        self._pool = pool
        self._member = member

    @property
    def up(self) -> bool:
        return self._member.up

    def record_ok(self) -> None:
        self._pool.record(self._member, Event.ANSWERED)

    def record_connect_failure(self) -> None:
        self._pool.record(self._member, Event.CONNECT)

    def answered_within(self, seconds: float) -> bool:
        last = self._member.last_ok
        return last is not None and self._pool.clock() - last <= seconds
