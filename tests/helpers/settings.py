"""The one Settings factory of the tests: nothing from `.env` or `PROXY_*`, ports 0
(free ports), and whatever the test overrides."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from proxy.server.app import RunningProxy
from proxy.settings import Settings

SIM_SPEED = 20.0  # cpu-tiny at 20x: a 64-token answer takes a few tens of ms

# The `make_proxy` fixture: settings overrides -> a running proxy in front of the sim.
ProxyFactory = Callable[..., AbstractAsyncContextManager[RunningProxy]]


def make_settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def proxy_settings(upstream: str, **overrides: Any) -> Settings:
    """A proxy in front of `upstream` for in-process tests: free ports, a fast control
    loop, and few samples per decision (the tests' simulator runs much faster than
    real time)."""
    values: dict[str, Any] = {
        "upstream": upstream,
        "port": 0,
        "admin_port": 0,
        "control_interval": 0.05,
        "window_min_samples": 5,
    }
    values.update(overrides)
    return make_settings(**values)
