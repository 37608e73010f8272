"""Fixtures: a fast simulator and a proxy in front of it, both in-process on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from proxy.server.app import RunningProxy, running_proxy
from proxy.sim.app import SimHandle, running_sim
from tests.helpers.settings import SIM_SPEED, ProxyFactory, proxy_settings


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
