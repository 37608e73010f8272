"""`sla-proxy sim`: serve the vLLM simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal

from proxy.sim.profiles import DEFAULT_PROFILE, PROFILES


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return number


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free)")
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="model + hardware"
    )
    parser.add_argument(
        "--speed", type=_positive, default=1.0, help="simulated seconds per wall second"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of output lengths and faults")
    parser.add_argument(
        "--stream-interval",
        type=_non_negative,
        default=0.02,
        help="wall seconds between two chunks of one stream, at most (first/last are immediate)",
    )


async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from proxy.sim.app import SimConfig, create_sim_app

    config = SimConfig(args.profile, args.speed, args.seed, args.stream_interval)
    runner = web.AppRunner(
        create_sim_app(config), handler_cancellation=True, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    host, port = runner.addresses[0][:2]
    print(
        f"sla-proxy sim: profile {args.profile}, speed {args.speed:g}, "
        f"listening on http://{host}:{port}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))
    return 0
