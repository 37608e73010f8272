"""Fixtures: a fast simulator and a proxy in front of it, both in-process on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from proxy.server.app import RunningProxy, running_proxy
from proxy.settings import Settings
from proxy.sim.app import SimHandle, running_sim
from tests.helpers.polling import eventually

__all__ = ["ProxyFactory", "eventually", "proxy_settings"]

SIM_SPEED = 20.0  # cpu-tiny at 20x: a 64-token answer takes a few tens of ms


def proxy_settings(upstream: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "upstream": upstream,
        "port": 0,
        "admin_port": 0,
        "control_interval": 0.05,
        "window_min_samples": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


ProxyFactory = Callable[..., AbstractAsyncContextManager[RunningProxy]]


@pytest.fixture
async def sim() -> AsyncIterator[SimHandle]:
    async with running_sim(profile="cpu-tiny", speed=SIM_SPEED, seed=1) as handle:
        yield handle


@pytest.fixture
def make_proxy(sim: SimHandle) -> ProxyFactory:
    def factory(**overrides: Any) -> AbstractAsyncContextManager[RunningProxy]:
        upstream = overrides.pop("upstream", sim.url)
        return running_proxy(proxy_settings(upstream, **overrides))

    return factory


@pytest.fixture
async def proxy(make_proxy: ProxyFactory) -> AsyncIterator[RunningProxy]:
    async with make_proxy() as running:
        yield running
