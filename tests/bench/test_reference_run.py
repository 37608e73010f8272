"""The reference sections' instruments working, on tiny sizes: the paced upstream and
its client (direct, through the bare passthrough, through sla-proxy), the raw client
sockets, the CPU meter, the report, and one whole tiny run against nginx and wrk
(installed by `make test`). Nothing here asserts a speed; `make bench` measures those."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from proxy.bench.suite import meter, sockets
from proxy.bench.suite.paced import PacedStream
from proxy.bench.suite.paced_client import run_streams
from proxy.bench.suite.passthrough import Passthrough
from proxy.bench.suite.refconfig import RefConfig
from proxy.bench.suite.refreport import markdown, write_reference
from proxy.bench.suite.refrun import run_reference_sections
from proxy.server.app import running_proxy
from proxy.settings import Settings
from tests.helpers.tools import require


@asynccontextmanager
async def paced_upstream(interval: float = 0.005) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: PacedStream(interval, False), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def bare_passthrough(upstream: int) -> AsyncIterator[int]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        app = web.Application()
        app.router.add_route(
            "*", "/{tail:.*}", Passthrough(f"http://127.0.0.1:{upstream}", session).relay
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield int(runner.addresses[0][1])
        finally:
            await runner.cleanup()


async def test_paced_streams_arrive_whole_and_timed_directly() -> None:
    async with paced_upstream() as port:
        tally = await run_streams(port, streams=3, tokens=5, interval=0.005, seconds=0.05, warmup=0)
    assert tally.failures == 0 and tally.streams >= 3
    assert tally.events == 5 * tally.streams  # every token event of every whole answer
    assert tally.delays and min(tally.delays) >= 0


async def test_paced_streams_pass_through_the_bare_passthrough() -> None:
    async with paced_upstream() as upstream, bare_passthrough(upstream) as port:
        tally = await run_streams(port, streams=2, tokens=4, interval=0.005, seconds=0.03, warmup=0)
    assert tally.failures == 0 and tally.events == 4 * tally.streams >= 8


async def test_paced_streams_pass_through_sla_proxy_which_strips_the_usage_it_asked_for() -> None:
    async with paced_upstream() as upstream:
        settings = Settings(
            _env_file=None,
            upstream=f"http://127.0.0.1:{upstream}",
            port=0,
            admin_port=0,
            algorithm="fixed",
            initial_limit=8,
        )
        async with running_proxy(settings) as proxy:
            port = int(proxy.url.rsplit(":", 1)[1])
            tally = await run_streams(
                port, streams=2, tokens=4, interval=0.005, seconds=0.03, warmup=0
            )
            body = {"model": "m", "messages": [], "max_tokens": 2, "stream": True}
            url = f"{proxy.url}/v1/chat/completions"
            async with aiohttp.ClientSession() as session, session.post(url, json=body) as answer:
                text = await answer.text()
    assert tally.failures == 0 and tally.events == 4 * tally.streams >= 8
    assert text.count('"ts":') == 2 and '"usage"' not in text and text.endswith("[DONE]\n\n")


async def test_socket_states_tell_open_answered_and_closed() -> None:
    finished: list[bool] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if line == b"answer\n":
                writer.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
                await writer.drain()
            if line != b"close\n":
                await reader.read()  # until the client goes away
        finally:
            writer.close()
            finished.append(True)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        held = await sockets.connect_many(port, 2)
        answered = await sockets.connect_many(port, 1, b"answer\n")
        closed = await sockets.connect_many(port, 1, b"close\n")

        def settled() -> bool:
            found = sockets.states(held + answered + closed)
            return (found.answered, found.closed) == (1, 1)

        assert await sockets.until(settled, 5.0)
        assert sockets.states(held + answered + closed) == sockets.SocketStates(2, 1, 1)
        sockets.close_all(held + answered + closed)
        assert await sockets.until(lambda: len(finished) == 4, 5.0)
    finally:
        server.close()
        await server.wait_closed()


def test_fd_limit_is_raised_to_what_is_needed() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = soft + 1 if hard == resource.RLIM_INFINITY or soft < hard else soft
    try:
        assert sockets.raise_fd_limit(wanted) >= wanted
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_cpu_meter_counts_a_process_tree() -> None:
    child = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        assert child.pid in meter.descendants(os.getpid())
        cpu = meter.CpuMeter({"self": os.getpid()})
        before = cpu.read()
        sum(range(200_000))  # something to count
        spent = meter.CpuMeter.spent(before, cpu.read())
        assert spent.wall > 0 and spent.servers["self"] >= 0 and spent.others_cores >= 0
    finally:
        child.kill()
        await child.wait()


@pytest.mark.slow
async def test_a_tiny_reference_run_fills_every_table(tmp_path: Path) -> None:
    require("nginx")  # missing, the test fails naming the command that installs it
    require("wrk")
    config = RefConfig(
        sections=("reference", "paced", "clients"),
        rounds=1,
        seconds=1,
        levels=(1,),
        paced_streams=4,
        paced_tokens=8,
        paced_seconds=0.3,
        paced_warmup=0.1,
        slow_sockets=20,
        queued=20,
        queue_wait=30,
    )
    result = await run_reference_sections(config, {"cpus": os.cpu_count()})
    assert [(row.kind, row.level) for row in result.rows] == [("json", 1), ("sse", 1)]
    for row in result.rows:
        assert len(row.rate) == 4 and row.errors == 0 and row.ratio is not None
        assert set(row.cpu_us_per_request) == {"bare aiohttp", "sla-proxy"}
    assert [row.path for row in result.paced_rows] == ["direct", "bare aiohttp", "sla-proxy"]
    assert all(row.failures == 0 and row.events > 0 for row in result.paced_rows)
    assert result.slow is not None and result.slow.ratio is not None
    assert [r.sockets.open for r in result.slow.runs if r.sockets is not None] == [20]
    assert result.queued is not None and result.queued.reached == 20
    assert result.queued.drain_seconds is not None and result.queued.rss_queued_bytes > 0
    written = write_reference(result, tmp_path)
    assert {path.name for path in written} == {"reference.json", "reference.md"}
    data = json.loads((tmp_path / "reference.json").read_text())
    assert {"reference", "paced", "slow_clients", "queued", "goals"} <= set(data)
    text = markdown(result)
    for heading in ("reference proxies", "Paced streams", "Slow and idle", "full queue", "Goals"):
        assert heading in text
