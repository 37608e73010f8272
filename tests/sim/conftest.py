from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.sim import SimHandle, running_sim


@pytest.fixture
async def sim() -> AsyncIterator[SimHandle]:
    # Fifty times real time: a 100-token answer takes ~15 ms of wall time.
    async with running_sim(profile="h100-llama3-8b", speed=50, seed=1) as handle:
        yield handle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
