"""The hostile client's target: a proxy in front of the in-process simulator, with the
two counts that prove there is no way around admission: tickets admitted (a listener
on the proxy's admission) and generation requests the simulator's engine received."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from proxy.admission import Listener
from proxy.limiter import Priority
from proxy.server.app import RunningProxy, running_proxy
from proxy.sim.app import SimHandle, running_sim
from tests.helpers.polling import eventually
from tests.helpers.settings import SIM_SPEED, proxy_settings

MAX_BODY = 1024 * 1024
KEYS = {"sk-low": "low", "sk-high": "high"}


class Admitted(Listener):
    def __init__(self) -> None:
        self.priorities: list[Priority] = []

    @property
    def count(self) -> int:
        return len(self.priorities)

    def admitted(self, priority: Priority, queued: float) -> None:
        self.priorities.append(priority)


@dataclass
class Rig:
    proxy: RunningProxy
    sim: SimHandle
    admitted: Admitted
    generations: list[int] = field(default_factory=lambda: [0])  # engine submissions

    @property
    def generated(self) -> int:
        return self.generations[0]

    @property
    def forwarded(self) -> float:
        """Requests the proxy sent upstream, admitted or not (its overhead histogram
        observes each one just before it goes)."""
        value = self.proxy.state.families.registry.get_sample_value("proxy_overhead_seconds_count")
        return value or 0.0

    async def settled(self) -> None:
        """Nothing in flight, queued or open upstream: every permit came back."""
        limiter = self.proxy.state.admission.limiter
        await eventually(lambda: limiter.inflight == 0, what="permits released")
        await eventually(lambda: limiter.queued == 0, what="queue empty")
        await eventually(lambda: self.sim.engine.num_running == 0, what="engine idle")
        await eventually(lambda: self.sim.engine.num_waiting == 0, what="engine queue empty")


def rig_settings(upstream: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "max_body_bytes": MAX_BODY,
        "api_key_priorities": KEYS,
        "initial_limit": 4,
        "max_limit": 4,
        "queue_size": 64,
    }
    values.update(overrides)
    return proxy_settings(upstream, **values)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with (
        running_sim(profile="cpu-tiny", speed=SIM_SPEED, seed=3) as sim,
        running_proxy(rig_settings(sim.url)) as proxy,
    ):
        admitted = Admitted()
        proxy.state.admission.subscribe(admitted)
        rig = Rig(proxy, sim, admitted)
        runner = sim.state.runner
        submit = runner.submit

        def counted(*args: Any, **kwargs: Any) -> Any:
            rig.generations[0] += 1
            return submit(*args, **kwargs)

        runner.submit = counted  # type: ignore[method-assign]
        yield rig
