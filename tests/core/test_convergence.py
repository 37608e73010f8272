"""Closed loop against a toy plant: does the controller find the knee, and hold it?

The plant: every request takes `E2E` seconds; its TTFT is spread +-20% around a
median that rises steeply with the concurrency limit, so that the P90 crosses the
0.3 s target at `oracle`. The loop decides every 0.25 s, as the control loop does,
on the requests admitted since the limit last changed (deterministic values).
"""

from __future__ import annotations

import pytest

from proxy.core.aimd import AIMDController
from proxy.core.controller import Controller, Observation
from proxy.core.evidence import SignalEvidence

TARGET = 0.3
E2E = 1.0
TICK = 0.25


def median_ttft(limit: int, oracle: int) -> float:
    # P90 of the +-20% spread is 1.16 x the median: at the oracle it meets the target.
    return (0.04 + (TARGET / 1.16 - 0.04) * (limit / oracle) ** 3) * 1.0


def fresh_values(limit: int, oracle: int, count: int) -> tuple[tuple[float, float], ...]:
    m = median_ttft(limit, oracle)
    return tuple((10.0, m * (0.8 + 0.4 * ((i * 7919) % 101) / 100)) for i in range(count))


def run(controller: Controller, oracle: int, seconds: float) -> list[int]:
    limit, changed_at, history = 8, 0.0, []
    for step in range(1, int(seconds / TICK) + 1):
        now = step * TICK
        count = int(max(0.0, now - changed_at - TARGET) * limit / E2E)
        obs = Observation(
            now=now,
            limit=limit,
            inflight=limit,
            peak_inflight=limit,
            queued=10,  # demand always exceeds the limit
            signals={"ttft": SignalEvidence(TARGET, fresh_values(limit, oracle, count))},
            completed=count,
            overloaded=0,
        )
        decision = controller.decide(obs)
        if decision.limit != limit:
            limit, changed_at = decision.limit, now
        history.append(limit)
    return history


@pytest.mark.parametrize("oracle", [64, 160])
def test_reaches_the_knee_within_seconds_and_stays_near_it(oracle: int) -> None:
    history = run(AIMDController(), oracle, seconds=120)
    reached = next(i * TICK for i, limit in enumerate(history, 1) if limit >= 0.85 * oracle)
    assert reached <= 10
    settled = history[-200:]  # the last 50 s
    assert 0.8 * oracle <= min(settled) and max(settled) <= 1.1 * oracle
