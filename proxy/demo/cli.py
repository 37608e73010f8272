"""`sla-proxy run` (what `make run` starts): a pool of two simulated engines of
different hardware (an H100 and a DGX Spark serving the same model, in one simulator
process on two ports), the proxy in front of both (two `--upstream` entries), a bounded
demo load that first stays under the pool's SLA knee and then goes well past it, and a
live block per second: the pool's limit, in-flight, queue and P90 against the SLA, then
each member's own limit, in-flight and P90s. The members' limits differ because their
capacities do. Ctrl-C stops everything; after the demo load the proxy keeps serving.
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
DEMO_PROFILES = "h100-llama3-8b,dgx-spark-llama3-8b"
# Tokens per SSE event from the simulated engines (vLLM's --stream-interval): hundreds
# of streams at one event per token would make the demo about this machine's CPU.
DEMO_STREAM_INTERVAL = 8


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profiles",
        default=DEMO_PROFILES,
        help="comma-separated simulator profiles, one pool member each (same model)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulator speed factor")
    parser.add_argument(
        "--upstream-port", type=int, default=8000, help="first engine's port (then +1, ...)"
    )
    parser.add_argument("--port", type=int, default=8080, help="proxy data port")
    parser.add_argument("--admin-port", type=int, default=9464, help="proxy admin port")
    # The DGX Spark decodes ~10x slower than the H100 (72 ms a token alone): a TPOT target
    # it can meet at some concurrency, so both members have a knee of their own.
    parser.add_argument("--sla-ttft", type=float, default=1.0, help="P90 TTFT target, s")
    parser.add_argument("--sla-tpot", type=float, default=0.1, help="P90 TPOT target, s")
    parser.add_argument("--clients-low", type=int, default=48, help="demo load, phase 1")
    parser.add_argument("--clients-high", type=int, default=256, help="demo load, phase 2")
    parser.add_argument("--phase-seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--no-load", action="store_true", help="no demo load, just serve")


def run(args: argparse.Namespace) -> int:
    from proxy.server.cli import run_loop, setup_logging

    setup_logging("warning")
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(_main(args))
    return 0


def members(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(name, profile, port) of each pool member: named by its profile (numbered when a
    profile repeats), on consecutive ports from --upstream-port."""
    profiles = [name.strip() for name in args.profiles.split(",") if name.strip()]
    if not profiles:
        raise SystemExit("sla-proxy run: --profiles names no profile")
    named = []
    for i, profile in enumerate(profiles):
        name = profile if profiles.count(profile) == 1 else f"{profile}-{i + 1}"
        named.append((name, profile, args.upstream_port + i))
    return named


def proxy_argv(args: argparse.Namespace) -> list[str]:
    """The options of `sla-proxy serve` for the demo: one `--upstream name=url` per
    member, as an operator would write them."""
    argv: list[str] = []
    for name, _, port in members(args):
        argv += ["--upstream", f"{name}=http://127.0.0.1:{port}"]
    argv += [
        "--port", str(args.port),
        "--admin-port", str(args.admin_port),
        "--sla-ttft", str(args.sla_ttft),
        "--sla-tpot", str(args.sla_tpot),
        "--log-level", "warning",
    ]  # fmt: skip
    return argv


async def _main(args: argparse.Namespace) -> None:
    from proxy.server.app import running_proxy
    from proxy.server.cli import SettingsError, configure, settings_from_args, wait_for_signal

    # Parsed exactly as `sla-proxy serve` parses it, so the demo runs what an operator runs.
    serve = argparse.ArgumentParser(prog="sla-proxy serve")
    configure(serve)
    try:
        settings = settings_from_args(serve.parse_args(proxy_argv(args)))
    except SettingsError as exc:
        raise SystemExit("sla-proxy run: " + "\n".join(exc.problems)) from None
    async with _simulator(args), running_proxy(settings) as proxy:
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


def simulator_argv(args: argparse.Namespace) -> list[str]:
    """One simulator process serving every member, each on its own port."""
    argv = ["sim", "--speed", str(args.speed), "--stream-interval", str(DEMO_STREAM_INTERVAL)]
    for _, profile, port in members(args):
        argv += ["--engine", f"{profile}:{port}"]
    return argv


@contextlib.asynccontextmanager
async def _simulator(args: argparse.Namespace) -> AsyncIterator[None]:
    """The simulated engines in their own process, so they have a core of their own."""
    import aiohttp

    command = [sys.executable, "-m", "proxy", *simulator_argv(args)]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            for _, _, port in members(args):
                while True:
                    if process.returncode is not None:
                        raise SystemExit(f"the simulator exited ({process.returncode})")
                    with contextlib.suppress(aiohttp.ClientError):
                        url = f"http://127.0.0.1:{port}/health"
                        async with session.get(url) as response:
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
    pool = "\n".join(
        f"    {name:<22} simulator http://127.0.0.1:{port} ({profile})"
        for name, profile, port in members(args)
    )
    print(
        f"""
sla-proxy {url}  ->  a pool of {len(members(args))}, one limit each:
{pool}
SLA: P90 TTFT <= {args.sla_ttft * 1000:.0f} ms, P90 TPOT <= {args.sla_tpot * 1000:.0f} ms

Point any OpenAI client at the proxy:
    export OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY=unused
    python -c "import openai; s = openai.OpenAI().chat.completions.create(
        model='meta-llama/Llama-3.1-8B-Instruct', stream=True,
        messages=[{{'role': 'user', 'content': 'Hello'}}])
    print(''.join(c.choices[0].delta.content or '' for c in s if c.choices))"
Live page: open {admin_url}/ in a browser (limit, queue, P90 vs SLA, sheds, alert)
Status: curl {admin_url}/status (members under "upstreams")    Metrics: curl {admin_url}/metrics
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
        f" {'TTFT p90':>9} {'TPOT p90':>9}  decision\n"
        f"{'':>5} {'member':<22} {'limit':>5} {'infl':>5} {'TTFT p90':>9} {'TPOT p90':>9}"
        f"  requests",
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
    from proxy.server.admin import status_of

    start = time.monotonic()
    last_shed: int | None = None
    while True:
        await asyncio.sleep(1.0)
        status = status_of(state)  # what GET /status answers
        shed = int(status["shed_total"])
        print(
            live_block(status, time.monotonic() - start, _Load.clients, shed - (last_shed or shed)),
            flush=True,
        )
        last_shed = shed


def live_block(status: dict[str, Any], elapsed: float, clients: int, shed: int) -> str:
    """The pool's line (limit = the sum of the members') and one line per member, from
    a /status document."""
    signals = status["signals"]

    def pool(signal: str) -> str:
        entry = signals.get(signal) or {}
        return _vs(entry.get("at_sla_percentile"), entry.get("target"))

    decision = status.get("last_decision") or {}
    lines = [
        f"{elapsed:5.0f} {clients:5d} {status['limit']:5d} {status['inflight']:5d}"
        f" {status['queued']:5d} {shed:6d} {pool('ttft')} {pool('tpot')}"
        f"  {decision.get('reason', '')}"
    ]
    for member in status["upstreams"]:
        percentiles = member["percentiles"]
        p90 = {signal: (values or {}).get("p90") for signal, values in percentiles.items()}
        state = "" if member["up"] else "  OUT (ejected)"
        if member.get("draining"):
            state += "  draining"
        lines.append(
            f"{'':>5} {member['name']:<22} {member['limit']:5d} {member['inflight']:5d}"
            f" {_vs(p90.get('ttft'), signals.get('ttft', {}).get('target'))}"
            f" {_vs(p90.get('tpot'), signals.get('tpot', {}).get('target'))}"
            f"  {member['requests']}{state}"
        )
    return "\n".join(lines)


def _vs(value: float | None, target: float | None) -> str:
    if value is None:
        return f"{'-':>9}"
    mark = "!" if target is not None and value > target else " "
    return f"{value * 1000:7.1f}ms{mark}"
