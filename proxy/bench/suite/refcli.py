"""The reference sections' command-line options (part of `bench-suite`)."""

from __future__ import annotations

import argparse

from proxy.bench.suite.refconfig import SECTIONS, RefConfig, option_pairs


def levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def configure_reference(parser: argparse.ArgumentParser) -> None:
    ref = RefConfig()
    group = parser.add_argument_group("reference sections (nginx, wrk, paced streams, clients)")
    add = group.add_argument
    add(
        "--sections",
        type=_names,
        default=ref.sections,
        metavar="S1,S2,...",
        help=f"what to run, among {','.join(SECTIONS)} (all)",
    )
    add("--ref-rounds", type=int, default=ref.rounds, help="interleaved rounds (3)")
    add("--ref-seconds", type=int, default=ref.seconds, help="per wrk run, whole seconds (3)")
    add(
        "--ref-levels",
        type=levels,
        default=ref.levels,
        metavar="C1,C2",
        help="wrk connections (1,64)",
    )
    add("--paced-streams", type=int, default=ref.paced_streams, help="concurrent streams (256)")
    add(
        "--paced-interval",
        type=float,
        default=ref.paced_interval,
        help="seconds between tokens (0.02)",
    )
    add("--paced-tokens", type=int, default=ref.paced_tokens, help="tokens per stream (64)")
    add("--paced-seconds", type=float, default=ref.paced_seconds, help="timed part of a run (5)")
    add(
        "--slow-sockets",
        type=int,
        default=ref.slow_sockets,
        help="idle + trickling client sockets (5000)",
    )
    add(
        "--trickle-share",
        type=float,
        default=ref.trickle_share,
        help="share of them that trickle header bytes (0.5)",
    )
    add(
        "--trickle-interval",
        type=float,
        default=ref.trickle_interval,
        help="seconds between two bytes of a trickling socket (2)",
    )
    add("--queued", type=int, default=ref.queued, help="requests held in the queue (10000)")
    add("--proxy-option", action="append", metavar="NAME=VALUE",
        help="extra `serve` option, clients section (client-header-timeout=5)")  # fmt: skip


def ref_config(args: argparse.Namespace) -> RefConfig:
    return RefConfig(
        sections=args.sections,
        rounds=args.ref_rounds,
        seconds=args.ref_seconds,
        levels=args.ref_levels,
        paced_streams=args.paced_streams,
        paced_interval=args.paced_interval,
        paced_tokens=args.paced_tokens,
        paced_seconds=args.paced_seconds,
        slow_sockets=args.slow_sockets,
        trickle_share=args.trickle_share,
        trickle_interval=args.trickle_interval,
        queued=args.queued,
        proxy_options=option_pairs(args.proxy_option),
    )
