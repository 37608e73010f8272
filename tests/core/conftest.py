from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from proxy.core.controller import Observation

ObsFactory = Callable[..., Observation]


def make_observation(
    *,
    limit: int = 32,
    peak_inflight: int | None = None,
    queued: int = 0,
    percentiles: Mapping[str, float | None] | None = None,
    targets: Mapping[str, float] | None = None,
    completed: int = 100,
    overloaded: int = 0,
    now: float = 0.0,
) -> Observation:
    """A busy observation (peak inflight = limit) with every target met by default."""
    targets = {"ttft": 0.3} if targets is None else targets
    if percentiles is None:
        percentiles = {signal: target * 0.5 for signal, target in targets.items()}
    return Observation(
        now=now,
        limit=limit,
        peak_inflight=limit if peak_inflight is None else peak_inflight,
        queued=queued,
        percentiles=percentiles,
        targets=targets,
        completed=completed,
        overloaded=overloaded,
    )


@pytest.fixture
def make_obs() -> ObsFactory:
    return make_observation
