"""The evidence-based AIMD: one behaviour per test, on hand-made evidence."""

from __future__ import annotations

import pytest

from proxy.core.aimd import AIMDController
from proxy.core.controller import Cause, Direction
from tests.helpers.controllers import ObsFactory, Probe, evidence, split_policy

T = 0.3  # the TTFT target of the default observation


def aimd(**kwargs: float) -> Probe:
    policy, own = split_policy(kwargs)
    return Probe(AIMDController(policy, **own))


def ttft(values: list[float], **kwargs: object) -> dict[str, object]:
    return {"ttft": evidence(T, values, **kwargs)}  # type: ignore[arg-type]


def breached(c: Probe, make_obs: ObsFactory, limit: int = 100) -> None:
    """End slow start with one conclusive breach, as a past episode would have."""
    assert c.decide(make_obs(limit=limit, signals=ttft([0.6] * 10))).direction is Direction.DOWN


def test_grows_halfway_to_the_proven_headroom(make_obs: ObsFactory) -> None:
    # 100 requests at half the target: the quantile is under T / 2 (headroom 2), so
    # the limit grows halfway to where the proportional model meets the target.
    d = aimd().decide(make_obs(limit=32))
    assert (d.limit, d.direction, d.cause) == (48, Direction.UP, Cause.HEADROOM)


def test_growth_never_more_than_doubles(make_obs: ObsFactory) -> None:
    d = aimd().decide(make_obs(limit=32, signals=ttft([0.01] * 100)))
    assert d.limit == 64


def test_near_the_target_grows_by_the_step(make_obs: ObsFactory) -> None:
    c = aimd(increase_step=2)
    breached(c, make_obs)
    d = c.decide(make_obs(limit=32, signals=ttft([0.26] * 200)))  # headroom 1.1 proven
    assert (d.limit, d.cause) == (34, Cause.HEADROOM)


def test_grows_only_when_the_evidence_proves_room_past_the_limit(make_obs: ObsFactory) -> None:
    # Under the target, but with no headroom proven past it: holding at the limit, not
    # probing on no evidence.
    c = aimd(increase_step=2)
    breached(c, make_obs)
    d = c.decide(make_obs(limit=32, signals=ttft([0.29] * 200)))
    assert (d.limit, d.cause) == (32, Cause.HEADROOM)
    assert "no room proven" in d.reason


def test_growth_is_applied_to_what_ran_not_to_the_limit(make_obs: ObsFactory) -> None:
    # Headroom 2 measured with 40 in flight under a limit of 48, nothing queued: the
    # evidence is about 40, so the limit grows to halfway past 40 (60), not past 48.
    d = aimd().decide(make_obs(limit=48, peak_inflight=40))
    assert d.limit == 60


def test_holds_while_the_evidence_is_inconclusive(make_obs: ObsFactory) -> None:
    c = aimd()
    breached(c, make_obs)
    d = c.decide(make_obs(limit=32, signals=ttft([0.25] * 10)))
    assert (d.limit, d.cause) == (32, Cause.INCONCLUSIVE)


def test_holds_when_the_limit_is_not_in_use(make_obs: ObsFactory) -> None:
    d = aimd().decide(make_obs(limit=32, peak_inflight=10, queued=0))
    assert (d.limit, d.cause) == (32, Cause.IDLE)


def test_a_queue_counts_as_use(make_obs: ObsFactory) -> None:
    d = aimd().decide(make_obs(limit=32, peak_inflight=10, queued=3))
    assert d.direction is Direction.UP


def test_a_breach_cuts_to_target_over_quantile(make_obs: ObsFactory) -> None:
    # P90 0.4 s against 0.3 s: the limit at which the proportional model meets the
    # target is limit x 0.75.
    d = aimd().decide(make_obs(limit=100, signals=ttft([0.1] * 50 + [0.4] * 50)))
    assert (d.limit, d.direction, d.cause) == (75, Direction.DOWN, Cause.SLA_BREACH)


def test_a_marginal_breach_still_cuts_by_the_backoff(make_obs: ObsFactory) -> None:
    values = [0.1] * 700 + [0.31] * 300  # conclusively over, barely
    assert aimd(backoff=0.9).decide(make_obs(limit=100, signals=ttft(values))).limit == 90


def test_one_decision_at_most_halves(make_obs: ObsFactory) -> None:
    assert aimd().decide(make_obs(limit=100, signals=ttft([3.0] * 10))).limit == 50


def test_requests_waiting_past_the_target_decide_before_they_finish(
    make_obs: ObsFactory,
) -> None:
    signals = ttft([], pending=[0.5, 0.6, 0.7])  # a hang: three past the target already
    assert aimd().decide(make_obs(limit=100, signals=signals)).cause is Cause.SLA_BREACH


def test_a_cut_starts_from_what_was_in_flight(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=400, inflight=100, peak_inflight=100, signals=ttft([3.0] * 10))
    assert aimd().decide(obs).limit == 50


def test_holds_until_a_decrease_has_drained(make_obs: ObsFactory) -> None:
    obs = make_obs(limit=50, inflight=80, signals=ttft([3.0] * 10))
    d = aimd().decide(obs)
    assert (d.limit, d.cause) == (50, Cause.DEAD_TIME)


def test_after_a_breach_growth_stops_short_of_the_old_knee_then_probes(
    make_obs: ObsFactory,
) -> None:
    c = aimd(backoff=0.9)
    breached(c, make_obs, limit=100)  # knee near 100; grow freely up to 90 only
    assert c.decide(make_obs(limit=60, signals=ttft([0.01] * 100))).limit == 90
    assert c.decide(make_obs(limit=90, signals=ttft([0.2] * 100))).limit == 95  # halfway


def test_twice_the_headroom_near_the_old_knee_probes_past_it(make_obs: ObsFactory) -> None:
    c = aimd(backoff=0.9)
    breached(c, make_obs, limit=100)
    assert c.decide(make_obs(limit=95, signals=ttft([0.05] * 100))).limit == 97  # halfway
    assert c.decide(make_obs(limit=105, signals=ttft([0.05] * 100))).limit == 116


def test_a_lull_below_the_limit_does_not_forget_the_old_knee(make_obs: ObsFactory) -> None:
    c = aimd(backoff=0.9)
    breached(c, make_obs, limit=100)
    # Fast, but measured at 80 in flight under a limit of 95 with nothing queued: that
    # says nothing about 95, so the probing near the old knee stays additive.
    lull = make_obs(limit=95, peak_inflight=80, signals=ttft([0.05] * 100))
    assert c.decide(lull).limit == 96


def test_slow_start_acts_on_a_handful_of_requests(make_obs: ObsFactory) -> None:
    few = ttft([0.05, 0.14, 0.1, 0.12, 0.08])  # too spread to prove, but all under T / 2
    assert aimd().decide(make_obs(limit=8, signals=few)).direction is Direction.UP


def test_a_breach_after_growth_goes_back_to_where_the_growth_was_measured(
    make_obs: ObsFactory,
) -> None:
    # Slow start doubled 64 -> 128 on evidence measured at 64; the breach at 128 says the
    # knee lies between: back to 64 (not a marginal 0.9 x 128), and from there the way
    # up is probed by at most 1 / backoff a decision, not retaken freely.
    c = aimd(backoff=0.9)
    assert c.decide(make_obs(limit=64, signals=ttft([0.01] * 100))).limit == 128
    marginal = ttft([0.1] * 700 + [0.31] * 300)
    assert c.decide(make_obs(limit=128, signals=marginal)).limit == 64
    assert c.decide(make_obs(limit=64, signals=ttft([0.01] * 100))).limit == 71


def test_after_a_breach_a_handful_is_not_enough(make_obs: ObsFactory) -> None:
    c = aimd()
    breached(c, make_obs)
    few = ttft([0.05, 0.2, 0.1, 0.25, 0.15])
    assert c.decide(make_obs(limit=30, signals=few)).cause is Cause.INCONCLUSIVE


def test_halving_without_relief_keeps_the_limit_that_served_more(
    make_obs: ObsFactory,
) -> None:
    c = aimd()
    slow = ttft([0.45] * 10)  # the same latency whatever the concurrency
    assert c.decide(make_obs(limit=100, signals=slow, good_rate=5.0)).limit == 66
    assert c.decide(make_obs(limit=66, signals=slow)).limit == 44
    restored = c.decide(make_obs(limit=44, signals=slow, good_rate=2.0))
    assert (restored.limit, restored.cause) == (100, Cause.FLOOR)
    held = c.decide(make_obs(limit=100, signals=slow))
    assert (held.limit, held.cause) == (100, Cause.FLOOR)


def test_which_limit_serves_more_waits_for_outcomes_at_the_lower_one(
    make_obs: ObsFactory,
) -> None:
    c = aimd()
    slow = ttft([0.45] * 10)
    assert c.decide(make_obs(limit=100, signals=slow, good_rate=5.0)).limit == 66
    assert c.decide(make_obs(limit=66, signals=slow)).limit == 44
    # Latency evidence at 44 is in, but no request admitted under it has finished:
    # its good rate is not measured yet (0 is not a measurement), so hold, no verdict.
    early = c.decide(make_obs(limit=44, signals=slow, completed=0))
    assert (early.limit, early.cause) == (44, Cause.INCONCLUSIVE)
    later = c.decide(make_obs(limit=44, signals=slow, good_rate=2.0))
    assert (later.limit, later.cause) == (100, Cause.FLOOR)


def test_halving_without_relief_stays_low_when_low_serves_more(make_obs: ObsFactory) -> None:
    c = aimd()
    slow = ttft([0.45] * 10)
    c.decide(make_obs(limit=100, signals=slow, good_rate=2.0))
    c.decide(make_obs(limit=66, signals=slow))
    kept = c.decide(make_obs(limit=44, signals=slow, good_rate=3.0))
    assert (kept.limit, kept.cause) == (44, Cause.FLOOR)


def test_an_engine_that_slowed_mid_episode_is_relieved_by_the_later_cut(
    make_obs: ObsFactory,
) -> None:
    c = aimd()
    c.decide(make_obs(limit=100, signals=ttft([0.45] * 10), good_rate=5.0))  # -> 66
    # The engine slowed meanwhile: twice the latency at 66, cut to 33.
    assert c.decide(make_obs(limit=66, signals=ttft([0.9] * 10))).limit == 33
    # At 33, no better than at 100, but much better than at 66: the limit works.
    later = c.decide(make_obs(limit=33, signals=ttft([0.5] * 10)))
    assert (later.cause, later.direction) == (Cause.SLA_BREACH, Direction.DOWN)


def test_the_floor_verdict_is_tested_again_later(make_obs: ObsFactory) -> None:
    c = aimd()
    slow = ttft([0.45] * 10)
    c.decide(make_obs(limit=100, signals=slow, good_rate=5.0, now=0.0))
    c.decide(make_obs(limit=66, signals=slow, now=1.0))
    verdict = c.decide(make_obs(limit=44, signals=slow, good_rate=2.0, now=2.0))
    assert (verdict.limit, verdict.cause) == (100, Cause.FLOOR)
    # The episode took 2 s, so the verdict holds for 18 s more, then it is re-tested.
    assert c.decide(make_obs(limit=100, signals=slow, now=19.0)).cause is Cause.FLOOR
    retest = c.decide(make_obs(limit=100, signals=slow, now=20.0))
    assert (retest.cause, retest.limit) == (Cause.SLA_BREACH, 66)


def test_upstream_failures_cut_by_the_backoff(make_obs: ObsFactory) -> None:
    d = aimd(backoff=0.5).decide(make_obs(limit=40, completed=30, overloaded=10))
    assert (d.limit, d.cause) == (20, Cause.OVERLOAD)


def test_a_single_failure_is_noise(make_obs: ObsFactory) -> None:
    assert aimd().decide(make_obs(completed=100, overloaded=1)).direction is Direction.UP


def test_without_targets_only_failures_limit_growth(make_obs: ObsFactory) -> None:
    c = aimd()
    assert c.decide(make_obs(limit=10, signals={}, completed=20)).limit == 20
    assert c.decide(make_obs(limit=10, signals={}, completed=2)).cause is Cause.INCONCLUSIVE


def test_stays_within_its_bounds(make_obs: ObsFactory) -> None:
    assert aimd(max_limit=40).decide(make_obs(limit=38)).limit == 40
    d = aimd(min_limit=4).decide(make_obs(limit=4, signals=ttft([3.0] * 10)))
    assert (d.limit, d.direction) == (4, Direction.HOLD)


def test_every_decision_explains_itself(make_obs: ObsFactory) -> None:
    c = aimd()
    for obs in (make_obs(), make_obs(peak_inflight=0), make_obs(signals=ttft([9.0] * 9))):
        d = c.decide(obs)
        assert d.cause in set(Cause) and d.reason
        assert d.details["peak_inflight"] == obs.peak_inflight


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        aimd(min_limit=10, max_limit=5)
    with pytest.raises(ValueError):
        AIMDController(backoff=1.0)
