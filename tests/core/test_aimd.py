from __future__ import annotations

import pytest

from proxy.core.aimd import AIMDController
from proxy.core.controller import Cause, Direction
from proxy.core.evidence import percentile_label
from tests.helpers.controllers import ObsFactory, Probe, split_policy


def aimd(**kwargs: float) -> Probe:
    policy, own = split_policy(kwargs)
    return Probe(AIMDController(policy, **own))


def additive(**kwargs: float) -> Probe:
    """An AIMD past slow start, growing by the configured step."""
    return aimd(slow_start_factor=1.0, **kwargs)


def test_grows_by_step_when_busy_and_under_target(make_obs: ObsFactory) -> None:
    decision = additive(increase_step=2).decide(make_obs(limit=32))
    assert (decision.limit, decision.direction, decision.cause) == (34, Direction.UP, "headroom")


def test_grows_when_requests_queue_even_below_utilization(make_obs: ObsFactory) -> None:
    decision = additive().decide(make_obs(limit=32, peak_inflight=4, queued=3))
    assert decision.limit == 33


def test_holds_when_idle(make_obs: ObsFactory) -> None:
    decision = additive().decide(make_obs(limit=32, peak_inflight=20, queued=0))
    assert (decision.limit, decision.direction, decision.cause) == (32, Direction.HOLD, "idle")


def test_holds_with_thin_data(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=32, percentiles={"ttft": None}, completed=3)
    decision = additive().decide(obs)
    assert (decision.limit, decision.cause) == (32, "thin_data")


def test_holds_when_one_of_several_targets_is_thin(make_obs: ObsFactory) -> None:
    obs = make_obs(targets={"ttft": 0.3, "tpot": 0.05}, percentiles={"ttft": 0.1, "tpot": None})
    assert additive().decide(obs).cause == "thin_data"


def test_backs_off_multiplicatively_on_breach(make_obs: ObsFactory) -> None:
    decision = additive(backoff=0.9).decide(make_obs(limit=64, percentiles={"ttft": 0.315}))
    assert (decision.limit, decision.direction, decision.cause) == (
        57,
        Direction.DOWN,
        "sla_breach",
    )
    assert decision.reason == "ttft p90 0.315s > target 0.300s: 64 -> 57"


def test_a_large_breach_cuts_in_proportion(make_obs: ObsFactory) -> None:
    # 1.5x over target: limit / 1.5, not one 10% step per fresh window.
    decision = additive(backoff=0.9).decide(make_obs(limit=90, percentiles={"ttft": 0.45}))
    assert decision.limit == 60


def test_one_decision_at_most_halves_the_limit(make_obs: ObsFactory) -> None:
    decision = additive(backoff=0.9).decide(make_obs(limit=64, percentiles={"ttft": 3.0}))
    assert decision.limit == 32


def test_backs_off_on_breach_even_while_idle(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=64, peak_inflight=2, percentiles={"ttft": 0.5})
    assert additive().decide(obs).direction is Direction.DOWN


def test_breach_on_one_signal_decreases_although_another_is_thin(make_obs: ObsFactory) -> None:
    obs = make_obs(targets={"ttft": 0.3, "tpot": 0.05}, percentiles={"ttft": 0.9, "tpot": None})
    assert additive().decide(obs).cause == "sla_breach"


def test_decrease_is_at_least_one(make_obs: ObsFactory) -> None:
    # floor(5 x 0.99) is 4 anyway; at limit 50 a 1% cut must still remove one.
    decision = additive(backoff=0.99).decide(make_obs(limit=50, percentiles={"ttft": 0.301}))
    assert decision.limit == 49


def test_backs_off_on_overload_outcomes(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=40, completed=50, overloaded=5)
    decision = additive(backoff=0.5).decide(obs)
    assert (decision.limit, decision.cause) == (20, "overload")
    assert "5 of 50 fresh outcomes overloaded" in decision.reason


def test_overload_decreases_even_with_thin_latency_data(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=40, percentiles={"ttft": None}, completed=4, overloaded=4)
    assert additive().decide(obs).cause == "overload"


def test_ignores_a_single_overloaded_request(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=40, completed=2, overloaded=1)
    assert additive().decide(obs).direction is Direction.UP


def test_ignores_overload_rate_at_or_below_threshold(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=40, completed=100, overloaded=5)
    assert additive(overload_threshold=0.05).decide(obs).direction is Direction.UP


def test_holds_at_floor_while_breached(make_obs: ObsFactory) -> None:
    decision = additive(min_limit=4).decide(make_obs(limit=4, percentiles={"ttft": 1.0}))
    assert (decision.limit, decision.direction, decision.cause) == (4, Direction.HOLD, "sla_breach")
    assert "floor" in decision.reason


def test_never_exceeds_max(make_obs: ObsFactory) -> None:
    decision = additive(max_limit=40, increase_step=5).decide(make_obs(limit=38))
    assert decision.limit == 40
    held = additive(max_limit=40).decide(make_obs(limit=40))
    assert (held.limit, held.direction) == (40, Direction.HOLD)


def test_clamps_an_out_of_range_limit(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=500, peak_inflight=0)
    decision = additive(max_limit=100).decide(obs)
    assert (decision.limit, decision.direction) == (100, Direction.DOWN)


def test_no_double_decrease_on_fresh_thin_evidence(make_obs: ObsFactory) -> None:
    controller = additive()
    first = controller.decide(make_obs(limit=64, percentiles={"ttft": 0.6}))
    # After the change the loop asks with min_epoch = the new epoch: the breach
    # that caused the decrease is not in it, and too few fresh samples exist yet.
    fresh = make_obs(limit=first.limit, percentiles={"ttft": None}, completed=2, overloaded=0)
    second = controller.decide(fresh)
    assert (second.limit, second.cause) == (first.limit, "thin_data")


def test_slow_start_grows_multiplicatively_well_under_target(make_obs: ObsFactory) -> None:
    controller = aimd(slow_start_factor=1.5)
    decision = controller.decide(make_obs(limit=8, percentiles={"ttft": 0.1}))
    assert (decision.limit, decision.cause) == (12, "slow_start")


def test_slow_start_growth_tapers_near_target(make_obs: ObsFactory) -> None:
    controller = aimd(slow_start_factor=1.5, slow_start_below=0.8)
    near = controller.decide(make_obs(limit=100, percentiles={"ttft": 0.27}))  # 90%
    at = controller.decide(make_obs(limit=100, percentiles={"ttft": 0.3}))  # 100%
    assert 124 <= near.limit <= 125  # x1.25, half of the full x1.5
    assert at.limit == 101


def test_slow_start_ends_at_first_decrease_then_additive(make_obs: ObsFactory) -> None:
    controller = aimd(slow_start_factor=2.0, increase_step=1)
    assert controller.decide(make_obs(limit=8)).limit == 16
    assert controller.decide(make_obs(limit=16, percentiles={"ttft": 0.33})).limit == 14
    after = controller.decide(make_obs(limit=14, percentiles={"ttft": 0.28}))  # 93%
    assert (after.limit, after.cause) == (15, "headroom")
    assert controller.phase == "additive"


def test_far_under_target_after_slow_start_regrows_multiplicatively(
    make_obs: ObsFactory,
) -> None:
    """Capacity came back (latency at a third of target): follow it in a few
    decisions instead of +1 per fresh window."""
    controller = aimd(slow_start_factor=1.5, increase_step=1)
    controller.decide(make_obs(limit=100, percentiles={"ttft": 0.6}))  # ends slow start
    far = controller.decide(make_obs(limit=50, percentiles={"ttft": 0.1}))
    assert (far.limit, far.cause) == (75, "headroom")
    between = controller.decide(make_obs(limit=40, percentiles={"ttft": 0.21}))  # 70%
    assert between.limit == 50  # x1.25: halfway through the taper
    near = controller.decide(make_obs(limit=50, percentiles={"ttft": 0.27}))  # 90%
    assert near.limit == 51


def test_without_targets_reacts_to_overload_only(make_obs: ObsFactory) -> None:
    controller = additive(min_completed=20)
    grow = controller.decide(make_obs(limit=10, targets={}, percentiles={"e2e": 99.0}))
    assert (grow.limit, grow.cause) == (11, "headroom")
    down = controller.decide(make_obs(limit=10, targets={}, completed=30, overloaded=10))
    assert down.cause == "overload"
    thin = controller.decide(make_obs(limit=10, targets={}, completed=5))
    assert thin.cause == "thin_data"


def test_target_never_measured_by_traffic_does_not_block_growth(make_obs: ObsFactory) -> None:
    # TTFT targeted, but only non-streamed answers: the window leaves ttft out.
    obs = make_obs(limit=10, targets={"ttft": 0.3, "e2e": 2.0}, percentiles={"e2e": 1.0})
    assert additive().decide(obs).direction is Direction.UP


def test_decisions_use_known_causes_and_carry_details(make_obs: ObsFactory) -> None:
    controller = aimd()
    observations = [
        make_obs(),
        make_obs(peak_inflight=0),
        make_obs(percentiles={"ttft": None}),
        make_obs(percentiles={"ttft": 9.0}),
        make_obs(completed=10, overloaded=10),
        make_obs(),
    ]
    for obs in observations:
        decision = controller.decide(obs)
        assert decision.cause in set(Cause)
        assert decision.reason
        assert decision.details["peak_inflight"] == obs.peak_inflight


@pytest.mark.parametrize(("q", "label"), [(0.9, "p90"), (0.95, "p95"), (0.999, "p99.9")])
def test_percentile_label(q: float, label: str) -> None:
    assert percentile_label(q) == label


def test_rejects_inconsistent_bounds() -> None:
    with pytest.raises(ValueError):
        aimd(min_limit=10, max_limit=5)
