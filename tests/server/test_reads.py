"""IdleWatch: at most `idle` seconds of waiting in any one read, on one timer per body
(virtual time: deadlines are exact)."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp import StreamReader

from proxy.server.reads import IdleTimeout, IdleWatch
from tests.helpers.vtime import now, settle, virtual_time

IDLE = 5.0


def reader() -> StreamReader:
    protocol = mock.Mock(_reading_paused=False)
    return StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())


@virtual_time
async def test_buffered_bytes_come_back_without_arming_a_timer() -> None:
    body = reader()
    body.feed_data(b"abc")
    body.feed_eof()
    watch = IdleWatch(body, IDLE)
    assert await watch.read() == b"abc"
    assert await watch.read() == b""
    assert watch._handle is None  # no read waited: no timer at all
    watch.close()


@virtual_time
async def test_a_read_waiting_longer_than_idle_ends_with_idle_timeout() -> None:
    body = reader()
    watch = IdleWatch(body, IDLE)
    started = now()
    with pytest.raises(IdleTimeout):
        await watch.read()
    assert now() - started == pytest.approx(IDLE)
    watch.close()


@virtual_time
async def test_chunks_closer_than_idle_never_time_out_however_long_the_body() -> None:
    body = reader()
    watch = IdleWatch(body, IDLE)

    async def trickle() -> None:
        for _ in range(6):  # 6 x 4 s: far longer than one idle period in all
            await asyncio.sleep(IDLE * 0.8)
            body.feed_data(b"x")
        body.feed_eof()

    feeder = asyncio.create_task(trickle())
    got = b""
    while chunk := await watch.read():
        got += chunk
    await feeder
    assert got == b"x" * 6
    watch.close()


@virtual_time
async def test_time_spent_not_waiting_does_not_count() -> None:
    """The relay writing to a slow client between reads is not upstream silence."""
    body = reader()
    watch = IdleWatch(body, IDLE)
    body.feed_data(b"a")
    loop = asyncio.get_running_loop()
    loop.call_later(IDLE * 0.5, body.feed_data, b"b")
    assert await watch.read() == b"a"
    # arm the timer with a read that waits, then "write" for longer than idle
    assert await watch.read() == b"b"
    await asyncio.sleep(IDLE * 3)
    loop.call_later(IDLE * 0.9, body.feed_data, b"c")
    assert await watch.read() == b"c"
    started = now()
    with pytest.raises(IdleTimeout):  # and a real silence still ends the read on time
        await watch.read()
    assert now() - started == pytest.approx(IDLE)
    watch.close()


@virtual_time
async def test_before_wait_runs_once_before_the_first_read_that_waits() -> None:
    body = reader()
    calls: list[float] = []
    watch = IdleWatch(body, IDLE, lambda: calls.append(now()))
    body.feed_data(b"a")
    assert await watch.read() == b"a"
    assert calls == []  # the first bytes were at hand: nothing had to wait
    loop = asyncio.get_running_loop()
    loop.call_later(1, body.feed_data, b"b")
    loop.call_later(2, body.feed_data, b"c")
    assert await watch.read() == b"b"
    assert await watch.read() == b"c"
    assert len(calls) == 1
    watch.close()


@virtual_time
async def test_close_disarms_the_timer() -> None:
    body = reader()
    watch = IdleWatch(body, IDLE)
    loop = asyncio.get_running_loop()
    loop.call_later(1, body.feed_data, b"a")
    assert await watch.read() == b"a"
    watch.close()
    await asyncio.sleep(IDLE * 2)
    await settle()
    assert body.exception() is None  # the timer never fired on the finished body
