"""`sla-proxy` command line: one subcommand per tool.

Each subcommand lives in its own module exposing `configure(parser)` and
`run(args) -> int`; a module is imported only to build its parser, and its heavy
imports happen inside `run`, so `sla-proxy capacity` never loads aiohttp.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from proxy import __version__

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("proxy.server.cli", "run the proxy in front of an upstream"),
    "sim": ("proxy.sim.cli", "run the vLLM simulator"),
    "run": ("proxy.demo.cli", "simulator + proxy + live limit table (what `make run` starts)"),
    "bench": ("proxy.bench.cli", "load benchmark: concurrency / request-rate sweeps"),
    "capacity": ("proxy.capacity.cli", "KV-cache capacity planner"),
    "scenario": ("proxy.scenarios.cli", "admission-control scenarios against the simulator"),
    "bench-suite": ("proxy.bench.suite", "the project's benchmarks (make bench)"),
    "batching": ("proxy.bench.batching.cli", "static vs continuous batching, measured"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """All subcommands are listed; only `command`'s module is imported to configure it."""
    parser = argparse.ArgumentParser(prog="sla-proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sla-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).configure(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
