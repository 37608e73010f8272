"""`sla-proxy sim`: serve the vLLM simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from proxy.sim.profiles import DEFAULT_PROFILE, PROFILES
from proxy.sim.streaming import MAX_EVENT_RATE


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return number


def _at_least_one(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of tokens, got {value}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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
        type=_at_least_one,
        default=1,
        help="tokens per SSE event, as vLLM's flag (default 1: one event per token)",
    )
    parser.add_argument(
        "--batching",
        choices=("continuous", "static"),
        default="continuous",
        help="continuous (vLLM) or static: start a batch when --batch-size requests wait "
        "or the oldest waited --batch-timeout, admit nothing until its longest finishes",
    )
    parser.add_argument(
        "--batch-size", type=_at_least_one, default=32, help="static batching: requests per batch"
    )
    parser.add_argument(
        "--batch-timeout",
        type=_non_negative,
        default=0.1,
        help="static batching: simulated seconds the oldest request waits for a full batch",
    )
    parser.add_argument(
        "--max-event-rate",
        type=_positive,
        default=MAX_EVENT_RATE,
        help="SSE events per wall second over all streams; above it, tokens are merged "
        "into fewer events (logged once, counted in sim_coalesced_events_total)",
    )


async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from proxy.sim.app import SimConfig, create_sim_app
    from proxy.sim.batching import CONTINUOUS, Batching, StaticBatching, describe

    batching: Batching = (
        StaticBatching(args.batch_size, args.batch_timeout)
        if args.batching == "static"
        else CONTINUOUS
    )
    config = SimConfig(
        args.profile,
        args.speed,
        args.seed,
        stream_interval=args.stream_interval,
        max_event_rate=args.max_event_rate,
        batching=batching,
    )
    runner = web.AppRunner(
        create_sim_app(config), handler_cancellation=True, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    host, port = runner.addresses[0][:2]
    print(
        f"sla-proxy sim: profile {args.profile}, speed {args.speed:g}, "
        f"{describe(batching)} batching, "
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
    logging.basicConfig(level=logging.INFO, format="sla-proxy sim: %(levelname)s %(message)s")
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_serve(args))
    except ValueError as exc:  # a configuration the profile cannot take, before listening
        print(f"sla-proxy sim: {exc}", file=sys.stderr)
        return 2
    return 0
