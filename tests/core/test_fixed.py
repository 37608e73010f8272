from __future__ import annotations

import pytest

from proxy.core.controller import Direction
from proxy.core.fixed import FixedController
from tests.helpers.controllers import ObsFactory, Probe, evidence


@pytest.mark.parametrize(
    "obs_kwargs",
    [
        {"signals": {"ttft": evidence(0.3, [9.0] * 10)}},
        {"completed": 10, "overloaded": 10},
        {"peak_inflight": 0},
        {"queued": 50},
    ],
)
def test_never_moves(make_obs: ObsFactory, obs_kwargs: dict[str, object]) -> None:
    decision = Probe(FixedController(32)).decide(make_obs(limit=32, **obs_kwargs))
    assert (decision.limit, decision.direction, decision.cause) == (32, Direction.HOLD, "fixed")


def test_restores_its_limit_if_moved_elsewhere(make_obs: ObsFactory) -> None:
    decision = Probe(FixedController(32)).decide(make_obs(limit=20))
    assert (decision.limit, decision.direction) == (32, Direction.UP)
