from __future__ import annotations

import math

import pytest

from proxy.core.controller import Direction
from proxy.core.gradient import GradientController
from tests.helpers.controllers import ObsFactory, Probe, split_policy


def gradient(limit: int = 64, **kwargs: float) -> Probe:
    policy, own = split_policy(kwargs)
    return Probe(GradientController(policy, initial_limit=limit, **own))


def test_breach_moves_down_by_smoothed_gradient(make_obs: ObsFactory) -> None:
    # observed 2x target: gradient 0.5; smoothed 0.2 -> 64 * (0.8 + 0.2 * 0.5) = 57.6
    decision = gradient(64).decide(make_obs(limit=64, percentiles={"ttft": 0.6}))
    assert (decision.limit, decision.direction, decision.cause) == (
        58,
        Direction.DOWN,
        "sla_breach",
    )
    assert decision.details["gradient"] == 0.5


def test_gradient_never_below_half(make_obs: ObsFactory) -> None:
    decision = gradient(64).decide(make_obs(limit=64, percentiles={"ttft": 30.0}))
    assert decision.limit == 58  # the same as at 2x: one outlier window is capped


def test_grows_by_smoothed_queue_allowance_when_clearly_under(make_obs: ObsFactory) -> None:
    decision = gradient(64).decide(make_obs(limit=64, percentiles={"ttft": 0.1}))
    assert decision.limit == round(64 + 0.2 * math.sqrt(64))
    assert (decision.direction, decision.cause) == (Direction.UP, "headroom")


def test_small_steps_accumulate_until_the_limit_moves(make_obs: ObsFactory) -> None:
    controller = gradient(8)
    assert controller.decide(make_obs(limit=8)).limit == 9  # 8 + 0.2 * sqrt(8) = 8.57
    held = controller.decide(make_obs(limit=9))  # 8.57 + 0.2 * sqrt(8.57) = 9.16
    assert (held.limit, held.direction) == (9, Direction.HOLD)
    assert controller.decide(make_obs(limit=9)).limit == 10  # 9.76


def test_holds_within_band_of_target(make_obs: ObsFactory) -> None:
    decision = gradient(64, band=0.1).decide(make_obs(limit=64, percentiles={"ttft": 0.28}))
    assert (decision.limit, decision.cause) == (64, "within_band")


def test_holds_when_idle(make_obs: ObsFactory) -> None:
    decision = gradient(64).decide(make_obs(limit=64, peak_inflight=3))
    assert (decision.limit, decision.cause) == (64, "idle")


def test_holds_with_thin_data(make_obs: ObsFactory) -> None:
    decision = gradient(64).decide(make_obs(limit=64, percentiles={"ttft": None}))
    assert (decision.limit, decision.cause) == (64, "thin_data")


def test_overload_halves_the_smoothed_target(make_obs: ObsFactory) -> None:
    decision = gradient(100).decide(make_obs(limit=100, completed=20, overloaded=10))
    assert (decision.limit, decision.cause) == (90, "overload")


def test_follows_a_limit_set_elsewhere(make_obs: ObsFactory) -> None:
    controller = gradient(64)
    decision = controller.decide(make_obs(limit=20, peak_inflight=0))
    assert decision.limit == 20
    assert controller.estimate == 20.0


@pytest.mark.parametrize(("limit", "ttft", "expected"), [(2, 9.0, 2), (100, 0.01, 100)])
def test_clamps_to_bounds(make_obs: ObsFactory, limit: int, ttft: float, expected: int) -> None:
    controller = gradient(limit, min_limit=2, max_limit=100)
    assert controller.decide(make_obs(limit=limit, percentiles={"ttft": ttft})).limit == expected
