"""`sla-proxy run` (what `make run` starts): a pool of two simulated engines behind the
proxy; it tells where the live page is, it is there, and /status lists both members."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from typing import Any

import aiohttp
import pytest

from proxy.cli import build_parser
from proxy.demo.cli import live_block, members, proxy_argv, simulator_argv


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
        sys.executable, "-m", "proxy", "run", "--no-load", "--profiles", "cpu-tiny,cpu-tiny",
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
        async with aiohttp.ClientSession() as session:
            async with session.get(address) as response:
                assert response.status == 200 and response.content_type == "text/html"
            async with session.get(f"{address}status") as response:
                pool = (await response.json())["upstreams"]
        assert [(m["name"], m["url"].rstrip("/")) for m in pool] == [
            ("cpu-tiny-1", f"http://127.0.0.1:{upstream}"),
            ("cpu-tiny-2", f"http://127.0.0.1:{upstream + 1}"),
        ]
    finally:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.communicate(), 30)
        if process.returncode is None:
            process.kill()
            await process.wait()


def _args(*argv: str) -> Any:
    return build_parser("run").parse_args(["run", *argv])


def test_the_default_demo_is_a_heterogeneous_pool_of_two_on_consecutive_ports() -> None:
    assert members(_args("--upstream-port", "9000")) == [
        ("h100-llama3-8b", "h100-llama3-8b", 9000),
        ("dgx-spark-llama3-8b", "dgx-spark-llama3-8b", 9001),
    ]
    assert members(_args("--profiles", "cpu-tiny, cpu-tiny")) == [
        ("cpu-tiny-1", "cpu-tiny", 8000),
        ("cpu-tiny-2", "cpu-tiny", 8001),
    ]


def test_one_simulator_process_serves_every_member_on_its_port() -> None:
    argv = simulator_argv(_args("--upstream-port", "9000", "--speed", "2"))
    sim = build_parser("sim").parse_args(argv)
    assert [(e.profile, e.port) for e in sim.engine] == [
        ("h100-llama3-8b", 9000),
        ("dgx-spark-llama3-8b", 9001),
    ]
    assert sim.speed == 2.0


def test_the_proxy_gets_one_named_upstream_per_member() -> None:
    argv = proxy_argv(_args("--upstream-port", "9000", "--port", "9100", "--sla-tpot", "0.2"))
    given = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--upstream"]
    assert given == [
        "h100-llama3-8b=http://127.0.0.1:9000",
        "dgx-spark-llama3-8b=http://127.0.0.1:9001",
    ]
    assert argv[argv.index("--sla-tpot") + 1] == "0.2"
    serve = build_parser("serve").parse_args(["serve", *argv])  # what `sla-proxy serve` takes
    assert (serve.port, serve.sla_tpot) == ("9100", "0.2")


def _member(name: str, limit: int, up: bool = True, **p90: float | None) -> dict[str, Any]:
    return {
        "name": name,
        "url": f"http://{name}:8000",
        "up": up,
        "ejected_until": None if up else 4.0,
        "limit": limit,
        "inflight": limit - 1,
        "percentiles": {s: {"p50": None, "p90": v, "p99": None} for s, v in p90.items()},
        "requests": 10 * limit,
        "draining": False,
    }


def test_live_block_shows_the_pool_then_each_member_against_the_sla() -> None:
    signal = {"target": 0.1, "at_sla_percentile": 0.05}
    status = {
        "limit": 120,
        "inflight": 118,
        "queued": 3,
        "signals": {"ttft": {"target": 1.0, "at_sla_percentile": 0.2}, "tpot": signal},
        "last_decision": {"reason": "all signals within target: +1"},
        "upstreams": [
            _member("h100", 101, ttft=0.17, tpot=0.044),
            _member("spark", 19, ttft=0.2, tpot=0.12),
            _member("h100-b", 1, up=False, ttft=None, tpot=None),
        ],
    }
    pool, h100, spark, out = live_block(status, 12.0, 96, 4).splitlines()
    assert pool.split()[:6] == ["12", "96", "120", "118", "3", "4"]
    assert "200.0ms" in pool and pool.endswith("all signals within target: +1")
    assert h100.split()[:3] == ["h100", "101", "100"] and "44.0ms " in h100
    assert spark.split()[:3] == ["spark", "19", "18"] and "120.0ms!" in spark  # over target
    assert out.split()[:2] == ["h100-b", "1"] and "OUT (ejected)" in out
