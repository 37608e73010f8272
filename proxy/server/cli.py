"""`sla-proxy serve`: options generated from Settings, so the CLI, `PROXY_*` and
`.env` can never disagree about what exists."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine
from typing import Any

from pydantic import ValidationError

from proxy.settings import Settings

log = logging.getLogger("sla_proxy")

_JSON_FIELDS = {"api_key_priorities"}
_REPEATABLE_FIELDS = {"upstream"}  # given several times: a list (the pool's members)


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def configure(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        parser.add_argument(
            option_name(name),
            dest=name,
            default=argparse.SUPPRESS,
            action="append" if name in _REPEATABLE_FIELDS else "store",
            metavar=name.split("_")[-1].upper(),
            help=f"{field.description} [env PROXY_{name.upper()}; default {default!s}]",
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Raises SettingsError with one line per problem."""
    given: dict[str, Any] = {}
    problems: list[str] = []
    for name in Settings.model_fields:
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if name in _JSON_FIELDS:
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                problems.append(f"{option_name(name)}: not valid JSON ({exc.msg})")
                continue
        given[name] = value
    if problems:
        raise SettingsError(problems)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError([_describe(error) for error in exc.errors()]) from exc


class SettingsError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _describe(error: Any) -> str:
    loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:
        return f"settings: {message}"
    name = loc[0]
    where = f"{option_name(name)} / PROXY_{name.upper()}"
    value = error.get("input")
    if isinstance(value, list):  # a repeated option: one value shown as it was given
        value = value[0] if len(value) == 1 else None
    shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
    return f"{where}: {message}{shown}"


def load_settings_or_exit(args: argparse.Namespace) -> Settings:
    try:
        return settings_from_args(args)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"sla-proxy: invalid setting {problem}", file=sys.stderr)
        sys.exit(2)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it exists (Linux, macOS), asyncio's own loop elsewhere."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on platforms without it
        asyncio.run(main)
        return
    uvloop.run(main)


class Signals:
    """SIGTERM or SIGINT: the first starts the drain, a second one exits at once."""

    def __init__(self) -> None:
        self.first = asyncio.Event()
        self.at: float | None = None  # monotonic time of the first signal
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if not self.first.is_set():
            self.at = time.monotonic()
            self.first.set()
            return
        log.warning("second %s: exiting now, cutting everything in flight", sig.name)
        logging.shutdown()
        os._exit(128 + sig)


async def wait_for_signal() -> None:
    await Signals().first.wait()


def _with_fd_budget(settings: Settings) -> Settings:
    from proxy.server.connections import raise_fd_limit

    allowed = raise_fd_limit(settings.max_connections)
    if allowed >= settings.max_connections:
        return settings
    log.warning(
        "the open-files limit allows %d client connections, not --max-connections %d; "
        "serving with %d (raise the hard limit, e.g. ulimit -Hn, to allow more)",
        allowed,
        settings.max_connections,
        allowed,
    )
    return settings.model_copy(update={"max_connections": allowed})


async def serve(settings: Settings) -> None:
    from proxy.server.app import running_proxy

    for warning in settings.warnings():
        log.warning("%s", warning)
    settings = _with_fd_budget(settings)
    signals = Signals()
    async with running_proxy(settings) as proxy:
        log.info(
            "sla-proxy forwarding %s -> %s; admin on %s (algorithm %s, limit %d in [%d, %d])",
            proxy.url,
            ", ".join(spec.url for spec in settings.upstreams),
            proxy.admin_url,
            settings.algorithm.value,
            settings.initial_limit,
            settings.min_limit,
            settings.max_limit,
        )
        await signals.first.wait()
        log.info(
            "draining: %d in flight get up to %g s; new requests and /readyz answer 503",
            proxy.state.drain.in_flight,
            settings.shutdown_timeout,
        )
        # One deadline, counted from the signal; a second signal exits at once.
        started = signals.at if signals.at is not None else time.monotonic()
        await proxy.drain(max(0.0, started + settings.shutdown_timeout - time.monotonic()))
    log.info("stopped %.2f s after the signal", time.monotonic() - started)


def run(args: argparse.Namespace) -> int:
    settings = load_settings_or_exit(args)
    setup_logging(settings.log_level)
    try:
        run_loop(serve(settings))
    except OSError as exc:  # e.g. the port is taken
        print(f"sla-proxy: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
