"""`sla-proxy run` (what `make run` starts): the simulator, the proxy in front of it,
a bounded demo load that first stays under the SLA knee and then doubles past it,
and a live line per second of limit, in-flight, queue and P90 against the SLA.
Ctrl-C stops everything; after the demo load the proxy keeps serving your clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

DEMO_PROMPT_WORDS = 700  # ~1k tokens of context: TPOT then rises clearly with the batch


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="h100-llama3-8b", help="simulator profile")
    parser.add_argument("--speed", type=float, default=1.0, help="simulator speed factor")
    parser.add_argument("--upstream-port", type=int, default=8000, help="simulator port")
    parser.add_argument("--port", type=int, default=8080, help="proxy data port")
    parser.add_argument("--admin-port", type=int, default=9464, help="proxy admin port")
    parser.add_argument("--sla-ttft", type=float, default=1.0, help="P90 TTFT target, s")
    parser.add_argument("--sla-tpot", type=float, default=0.02, help="P90 TPOT target, s")
    parser.add_argument("--clients-low", type=int, default=32, help="demo load, phase 1")
    parser.add_argument("--clients-high", type=int, default=128, help="demo load, phase 2")
    parser.add_argument("--phase-seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--no-load", action="store_true", help="no demo load, just serve")


def run(args: argparse.Namespace) -> int:
    from proxy.server.cli import run_loop, setup_logging

    setup_logging("warning")
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(_main(args))
    return 0


async def _main(args: argparse.Namespace) -> None:
    from proxy.server.app import running_proxy
    from proxy.server.cli import wait_for_signal
    from proxy.settings import Settings

    upstream = f"http://127.0.0.1:{args.upstream_port}"
    settings = Settings(
        upstream=upstream,
        port=args.port,
        admin_port=args.admin_port,
        sla_ttft=args.sla_ttft,
        sla_tpot=args.sla_tpot,
        log_level="warning",
    )
    async with _simulator(args, upstream), running_proxy(settings) as proxy:
        _banner(args, proxy.url, proxy.admin_url)
        tasks = [asyncio.create_task(_live(proxy.state))]
        if not args.no_load:
            tasks.append(asyncio.create_task(_demo_load(args, proxy.url)))
        try:
            await wait_for_signal()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            print("\nstopping the proxy and the simulator", flush=True)


@contextlib.asynccontextmanager
async def _simulator(args: argparse.Namespace, url: str) -> AsyncIterator[None]:
    """The simulator in its own process, so it has a core of its own."""
    import aiohttp

    command = [
        sys.executable, "-m", "proxy", "sim",
        "--port", str(args.upstream_port),
        "--profile", args.profile,
        "--speed", str(args.speed),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                if process.returncode is not None:
                    raise SystemExit(f"the simulator exited ({process.returncode})")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/health") as response:
                        if response.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise SystemExit("the simulator did not start within 30 s")
                await asyncio.sleep(0.1)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


def _banner(args: argparse.Namespace, url: str, admin_url: str) -> None:
    print(
        f"""
sla-proxy {url}  ->  simulator http://127.0.0.1:{args.upstream_port} ({args.profile})
SLA: P90 TTFT <= {args.sla_ttft * 1000:.0f} ms, P90 TPOT <= {args.sla_tpot * 1000:.0f} ms

Point any OpenAI client at the proxy:
    export OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY=unused
    python -c "import openai; s = openai.OpenAI().chat.completions.create(
        model='meta-llama/Llama-3.1-8B-Instruct', stream=True,
        messages=[{{'role': 'user', 'content': 'Hello'}}])
    print(''.join(c.choices[0].delta.content or '' for c in s if c.choices))"
Live page: open {admin_url}/ in a browser (limit, queue, P90 vs SLA, sheds, alert)
Status: curl {admin_url}/status    Metrics: curl {admin_url}/metrics
""",
        flush=True,
    )
    if not args.no_load:
        print(
            f"Demo load: {args.clients_low} clients for {args.phase_seconds:g} s (under the knee), "
            f"then {args.clients_high} (past it), then none. Ctrl-C stops everything.\n",
            flush=True,
        )
    print(
        f"{'time':>5} {'load':>5} {'limit':>5} {'infl':>5} {'queue':>5} {'shed/s':>6}"
        f" {'TTFT p90':>9} {'TPOT p90':>9}  decision",
        flush=True,
    )


class _Load:
    clients = 0


async def _demo_load(args: argparse.Namespace, url: str) -> None:
    import aiohttp

    from proxy.load.client import send_request

    words = itertools.cycle(["the", "quick", "brown", "fox"])
    prompt = " ".join(itertools.islice(words, DEMO_PROMPT_WORDS))
    body: dict[str, Any] = {
        "model": "",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 128,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.get(f"{url}/v1/models") as response:
            body["model"] = (await response.json())["data"][0]["id"]

        async def client() -> None:
            while True:
                result = await send_request(session, url, "chat", body, time.monotonic, 120)
                if not result.ok:
                    await asyncio.sleep(0.5)  # a shed client backs off, as an SDK would

        for clients in (args.clients_low, args.clients_high):
            _Load.clients = clients
            tasks = [asyncio.create_task(client()) for _ in range(clients)]
            try:
                await asyncio.sleep(args.phase_seconds)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        _Load.clients = 0
        print("demo load finished; the proxy keeps serving (Ctrl-C to stop)", flush=True)


async def _live(state: Any) -> None:
    from proxy.admission import Listener

    class Sheds(Listener):
        count = 0

        def shed(self, priority: object, reason: object) -> None:
            self.count += 1

    sheds = Sheds()
    state.admission.subscribe(sheds)
    start = time.monotonic()
    last_shed = 0
    while True:
        await asyncio.sleep(1.0)
        control, limiter = state.admission.control, state.admission.limiter
        tick = control.last
        # What the controller judged: fresh samples at the SLA percentile.
        seen = tick.observation.quantiles(tick.percentile) if tick is not None else {}
        reason = tick.decision.reason if tick is not None else ""
        shed = sheds.count
        print(
            f"{time.monotonic() - start:5.0f} {_Load.clients:5d} {limiter.limit:5d}"
            f" {limiter.inflight:5d} {limiter.queued:5d} {shed - last_shed:6d}"
            f" {_vs(seen.get('ttft'), control.sla.targets.get('ttft'))}"
            f" {_vs(seen.get('tpot'), control.sla.targets.get('tpot'))}  {reason}",
            flush=True,
        )
        last_shed = shed


def _vs(value: float | None, target: float | None) -> str:
    if value is None:
        return f"{'-':>9}"
    mark = "!" if target is not None and value > target else " "
    return f"{value * 1000:7.1f}ms{mark}"
