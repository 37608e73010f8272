"""The statistical findings: binomial tails, tolerance bounds, censoring, and the
cohort rule for UNDER."""

from __future__ import annotations

import math

import pytest

from proxy.core.evidence import (
    Kind,
    SignalEvidence,
    binomial_cdf,
    binomial_sf,
    examine,
    tolerance_factor,
)

P90, CONF, MIN = 0.9, 0.95, 5


def finding(ev: SignalEvidence):  # type: ignore[no-untyped-def]
    return examine(ev, P90, CONF, MIN)


def old(values: list[float], age: float = 10.0) -> tuple[tuple[float, float], ...]:
    """Values of requests sent `age` seconds ago (long resolved)."""
    return tuple((age, v) for v in values)


def test_binomial_tails_match_hand_computed_values() -> None:
    assert binomial_cdf(0, 10, 0.1) == pytest.approx(0.9**10)
    assert binomial_sf(3, 3, 0.1) == pytest.approx(0.001)
    assert binomial_sf(1, 10, 0.1) == pytest.approx(1 - 0.9**10)
    assert binomial_cdf(10, 10, 0.1) == 1.0 and binomial_sf(0, 10, 0.1) == 1.0


def test_many_requests_waiting_past_the_target_cut_by_their_share() -> None:
    # Half of what is in flight still waits past the 1 s target (an engine queue past a
    # cliff): their ages bound the P90 at only 1.2 s, but at most half the concurrency
    # is being served, so the cut is to 0.5 / 0.9 of it, not to 1 / 1.2.
    f = finding(SignalEvidence(1.0, old([0.5] * 50), pending=(1.2,) * 50))
    assert f.kind is Kind.OVER
    assert f.factor == pytest.approx(0.5 / 0.9)


def test_tolerance_factor_is_close_to_the_exact_one() -> None:
    # Exact one-sided 95% / P90 normal tolerance factors: 3.41 (n=5), 2.35 (n=10).
    assert tolerance_factor(5, 0.9, 0.95) == pytest.approx(3.41, rel=0.02)
    assert tolerance_factor(10, 0.9, 0.95) == pytest.approx(2.35, rel=0.02)
    assert tolerance_factor(2, 0.9, 0.95) == math.inf


def test_three_misses_in_three_decide_over_at_once() -> None:
    f = finding(SignalEvidence(0.5, old([0.9, 1.0, 1.2])))
    assert f.kind is Kind.OVER
    assert f.factor == pytest.approx(0.5 / 1.2)  # target / the P90 (nearest rank) so far


def test_a_marginal_excess_is_not_enough_evidence() -> None:
    values = [0.1] * 85 + [0.6] * 15  # 15% miss of 100: could be a 10% engine's luck
    assert finding(SignalEvidence(0.5, old(values))).kind is Kind.INCONCLUSIVE


def test_a_marginal_excess_over_many_requests_is_over() -> None:
    values = [0.1] * 850 + [0.6] * 150
    assert finding(SignalEvidence(0.5, old(values))).kind is Kind.OVER


def test_requests_still_waiting_past_the_target_are_misses() -> None:
    # A hang: nothing came back, but three requests are past the target already.
    f = finding(SignalEvidence(0.5, (), pending=(0.7, 0.8, 0.9)))
    assert f.kind is Kind.OVER and f.misses == 3


def test_a_handful_far_under_target_is_enough_to_grow() -> None:
    f = finding(SignalEvidence(1.0, old([0.10, 0.11, 0.12, 0.10, 0.11])))
    assert (f.kind, f.how) == (Kind.UNDER, "tolerance")
    assert f.factor == 4.0


def test_a_handful_near_the_target_is_not() -> None:
    f = finding(SignalEvidence(1.0, old([0.80, 0.82, 0.79, 0.81, 0.80])))
    assert f.kind is Kind.INCONCLUSIVE


def test_many_requests_near_the_target_show_a_small_headroom() -> None:
    values = [0.80 + 0.0001 * i for i in range(200)]
    f = finding(SignalEvidence(1.0, old(values)))
    assert (f.kind, f.how, f.factor) == (Kind.UNDER, "binomial", 1.1)


def test_young_requests_do_not_count_for_growth() -> None:
    # Fast answers that came back within the last 0.1 s, while slow ones from the same
    # moment are still out: judging them would favour the fast.
    f = finding(SignalEvidence(1.0, old([0.05] * 10, age=0.1), pending=(0.1,) * 3))
    assert f.kind is Kind.INCONCLUSIVE


def test_no_evidence_is_inconclusive() -> None:
    assert finding(SignalEvidence(1.0, ())).kind is Kind.INCONCLUSIVE


def test_slow_start_estimate_is_the_percentile_point_estimate() -> None:
    # 19 requests at a fifth of the target and one at 0.6 of it: the proofs show only
    # headroom 1.5, but the point estimate of the P90 (at most a tenth of the cohort
    # above it) is under a quarter of the target: what slow start may act on.
    ev = SignalEvidence(1.0, old([0.2] * 19 + [0.6]))
    f = finding(ev)
    assert (f.kind, f.factor, f.estimate) == (Kind.UNDER, 1.5, 4.0)
    # Requests still waiting past a threshold count against it; those too young to
    # have missed it are not counted at all.
    assert finding(SignalEvidence(1.0, ev.resolved, pending=(0.3,) * 3)).estimate == 3.0
