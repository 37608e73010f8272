"""Closed loop against a toy plant: does a controller find the knee, and how fast?

The plant: every request takes `e2e` seconds; TTFT p90 rises steeply with the
concurrency limit and crosses the 0.3 s target exactly at `oracle`. The loop asks
once per simulated second with fresh evidence only, as the control loop does: after
a change, samples count only once requests admitted since then have completed and
`MIN_SAMPLES` of them exist.
"""

from __future__ import annotations

import pytest

from proxy.core.aimd import AIMDController
from proxy.core.controller import Controller, Observation, Policy
from proxy.core.gradient import GradientController

TARGET = 0.3
MIN_SAMPLES = 20


def ttft_p90(limit: int, oracle: int) -> float:
    return 0.05 + (TARGET - 0.05) * (limit / oracle) ** 3


def run(controller: Controller, oracle: int, seconds: int, e2e: float = 1.0) -> list[int]:
    limit, changed_at, history = 8, 0.0, []
    for now in range(1, seconds + 1):
        fresh = max(0.0, now - changed_at - e2e) * limit / e2e
        p90 = ttft_p90(limit, oracle) if fresh >= MIN_SAMPLES else None
        obs = Observation(
            now=float(now),
            limit=limit,
            peak_inflight=limit,
            queued=10,  # demand always exceeds the limit
            percentiles={"ttft": p90},
            targets={"ttft": TARGET},
            completed=int(fresh),
            overloaded=0,
        )
        decision = controller.decide(obs)
        if decision.limit != limit:
            limit, changed_at = decision.limit, float(now)
        history.append(limit)
    return history


@pytest.mark.parametrize("oracle", [64, 160])
def test_aimd_reaches_the_knee_well_within_a_minute(oracle: int) -> None:
    history = run(AIMDController(Policy(min_completed=MIN_SAMPLES)), oracle, seconds=60)
    reached = next(t for t, limit in enumerate(history, 1) if limit >= 0.8 * oracle)
    assert reached <= 30
    settled = history[-20:]
    assert 0.85 * oracle <= min(settled) and max(settled) <= 1.05 * oracle


@pytest.mark.parametrize("oracle", [64, 160])
def test_gradient_settles_just_under_the_knee(oracle: int) -> None:
    controller = GradientController(Policy(min_completed=MIN_SAMPLES), initial_limit=8)
    history = run(controller, oracle, seconds=300)
    settled = history[-30:]
    assert 0.85 * oracle <= min(settled) and max(settled) <= oracle
