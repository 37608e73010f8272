"""`sla-proxy sim`: serve the vLLM simulator until SIGINT/SIGTERM.

One process can serve a pool of engines, each an independent simulator (its own
engine, KV cache, faults and /metrics) on its own port:

    sla-proxy sim --engines 3 --port 8000          # 3 x h100-llama3-8b on 8000, 8001, 8002
    sla-proxy sim --engine h100-llama3-8b:8000 --engine dgx-spark-llama3-8b:8001

An `--engine` without a port takes `--port` plus its position (0: any free port).
Engine i is seeded `--seed + i`, so replicas of one profile differ in output lengths
as real replicas do. One line per engine is printed once all of them listen.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass

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
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """One engine of the process: what it simulates, where it listens, its seed."""

    profile: str
    port: int  # 0: any free port
    seed: int


@dataclass(frozen=True, slots=True)
class EngineArg:
    """An `--engine PROFILE[:PORT]` value, checked when parsed."""

    profile: str
    port: int | None


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a whole number, got {value}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return number


def _engine(value: str) -> EngineArg:
    profile, sep, port = value.partition(":")
    if profile not in PROFILES:
        known = ", ".join(sorted(PROFILES))
        raise argparse.ArgumentTypeError(f"unknown profile {profile!r} (known: {known})")
    return EngineArg(profile, _port(port) if sep else None)


def engine_specs(args: argparse.Namespace) -> list[EngineSpec]:
    """The engines to serve: `--engine` entries in order, else `--engines` copies of
    `--profile` on consecutive ports. Raises ValueError for two engines on one port."""
    entries: list[EngineArg] = args.engine or [EngineArg(args.profile, None)] * args.engines

    def port(i: int, entry: EngineArg) -> int:
        if entry.port is not None:
            return entry.port
        return 0 if args.port == 0 else args.port + i

    specs = [
        EngineSpec(entry.profile, port(i, entry), args.seed + i) for i, entry in enumerate(entries)
    ]
    fixed = [spec.port for spec in specs if spec.port != 0]
    if len(fixed) != len(set(fixed)):
        raise ValueError(f"two engines on one port: {', '.join(map(str, sorted(fixed)))}")
    if any(port > 65535 for port in fixed):
        raise ValueError(f"--port {args.port} + {len(specs) - 1} engines runs past port 65535")
    return specs


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=_port, default=8000, help="port of the first engine (0: any free)"
    )
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="model + hardware"
    )
    pool = parser.add_mutually_exclusive_group()
    pool.add_argument(
        "--engines",
        type=_at_least_one,
        default=1,
        help="serve this many engines of --profile on ports --port, --port+1, ...",
    )
    pool.add_argument(
        "--engine",
        type=_engine,
        action="append",
        metavar="PROFILE[:PORT]",
        help="one engine of its own profile (repeat for a heterogeneous pool); "
        "without a port: --port plus its position",
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

    specs = engine_specs(args)
    batching: Batching = (
        StaticBatching(args.batch_size, args.batch_timeout)
        if args.batching == "static"
        else CONTINUOUS
    )
    runners: list[web.AppRunner] = []
    try:
        lines = []
        for spec in specs:
            config = SimConfig(
                spec.profile,
                args.speed,
                spec.seed,
                stream_interval=args.stream_interval,
                max_event_rate=args.max_event_rate,
                batching=batching,
            )
            runner = web.AppRunner(
                create_sim_app(config),
                handler_cancellation=True,
                access_log=None,
                shutdown_timeout=2.0,
            )
            runners.append(runner)
            await runner.setup()
            await web.TCPSite(runner, args.host, spec.port).start()
            host, port = runner.addresses[0][:2]
            lines.append(
                f"sla-proxy sim: profile {spec.profile}, speed {args.speed:g}, "
                f"{describe(batching)} batching, listening on http://{host}:{port}"
            )
        print("\n".join(lines), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await asyncio.gather(*(runner.cleanup() for runner in runners))


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
    except OSError as exc:  # a port in use: the engines already started are closed
        print(f"sla-proxy sim: {exc}", file=sys.stderr)
        return 1
    return 0
