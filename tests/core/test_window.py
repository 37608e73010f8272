from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core.outcome import Flight, Outcome, Sample
from proxy.core.stats import nearest_rank
from proxy.core.window import LatencyWindow, OutcomeCounter, OutcomeCounts, SignalWindows

latencies = st.lists(
    st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=300,
)
percents = st.integers(min_value=1, max_value=100)


def reference_percentile(values: list[float], percent: int) -> float:
    """Nearest rank with exact arithmetic: smallest value with >= percent% at or below."""
    ordered = sorted(values)
    rank = math.ceil(Fraction(percent, 100) * len(ordered))
    return ordered[max(rank, 1) - 1]


def filled(
    values: list[float], *, horizon: float = 1e9, max_samples: int = 10_000
) -> LatencyWindow:
    window = LatencyWindow(horizon, max_samples)
    for i, value in enumerate(values):
        window.add(value, now=i * 1e-3)
    return window


@settings(max_examples=200, deadline=None)
@given(values=latencies, percent=percents)
def test_percentile_matches_sorted_reference(values: list[float], percent: int) -> None:
    snap = filled(values).snapshot(now=1.0)
    assert snap.percentile(percent / 100) == reference_percentile(values, percent)


@settings(max_examples=200, deadline=None)
@given(values=latencies, percent=percents, target=st.floats(min_value=0, max_value=1e4))
def test_percentile_meets_target_exactly_when_attainment_does(
    values: list[float], percent: int, target: float
) -> None:
    snap = filled(values).snapshot(now=1.0)
    p = snap.percentile(percent / 100)
    assert p is not None
    assert (p <= target) == (snap.within(target) >= Fraction(percent, 100) * len(values))


def test_p90_of_ten_samples_is_the_ninth() -> None:
    snap = filled([float(v) for v in range(10, 0, -1)]).snapshot(now=1.0)
    assert snap.percentile(0.9) == 9.0
    assert snap.percentile(0.5) == 5.0
    assert snap.percentile(1.0) == 10.0


def test_samples_older_than_horizon_leave() -> None:
    window = LatencyWindow(horizon=10.0, max_samples=100)
    window.add(5.0, now=0.0)
    window.add(1.0, now=6.0)
    assert window.snapshot(now=10.0).values == (1.0, 5.0)
    assert window.snapshot(now=10.5).values == (1.0,)
    assert window.snapshot(now=17.0).count == 0


def test_memory_bound_keeps_newest_samples() -> None:
    window = LatencyWindow(horizon=1e9, max_samples=16)
    for i in range(1000):
        window.add(float(i), now=float(i))
    assert len(window) == 16
    assert window.snapshot(now=1000.0).values == tuple(float(i) for i in range(984, 1000))


def test_min_epoch_sees_only_fresh_samples() -> None:
    window = LatencyWindow(horizon=100.0, max_samples=100)
    window.add(9.0, now=1.0, epoch=1)
    window.add(1.0, now=2.0, epoch=2)
    window.add(2.0, now=3.0, epoch=3)
    window.add(8.0, now=4.0, epoch=1)  # admitted under epoch 1, finished late
    assert window.snapshot(now=5.0, min_epoch=2).values == (1.0, 2.0)
    assert window.snapshot(now=5.0).count == 4


def test_thin_data_answers_none() -> None:
    snap = filled([0.1, 0.2, 0.3]).snapshot(now=1.0, min_samples=4)
    assert snap.count == 3
    assert snap.percentile(0.9) is None
    assert snap.attainment(0.25) is None


def test_attainment_is_fraction_within_target() -> None:
    snap = filled([0.1, 0.2, 0.3, 0.4]).snapshot(now=1.0)
    assert snap.attainment(0.3) == 0.75
    assert snap.attainment(0.05) == 0.0


def test_empty_window_answers_none() -> None:
    snap = LatencyWindow(10.0, 10).snapshot(now=0.0)
    assert snap.percentile(0.9) is None
    assert snap.attainment(1.0) is None


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_rejects_impossible_latency(bad: float) -> None:
    with pytest.raises(ValueError):
        LatencyWindow(10.0, 10).add(bad, now=0.0)


def test_nearest_rank_rejects_out_of_range_percentile() -> None:
    with pytest.raises(ValueError):
        nearest_rank(0.0, 10)


def test_outcome_counter_counts_per_epoch() -> None:
    counter = OutcomeCounter(horizon=30.0)
    for i in range(5):
        counter.add(False, now=float(i), epoch=1)
    counter.add(True, now=5.0, epoch=2)
    counter.add(False, now=5.0, epoch=2)
    counter.add(True, now=5.1, epoch=1)
    assert counter.counts(now=6.0).completed == 8
    fresh = counter.counts(now=6.0, min_epoch=2)
    assert (fresh.success, fresh.overload) == (1, 1)


def test_outcome_counter_forgets_after_horizon() -> None:
    counter = OutcomeCounter(horizon=10.0)
    counter.add(True, now=0.0)
    counter.add(False, now=8.0)
    assert counter.counts(now=9.0).completed == 2
    assert counter.counts(now=15.0).completed == 1
    assert counter.counts(now=30.0).completed == 0


def test_outcome_counter_memory_is_bounded_by_slots() -> None:
    counter = OutcomeCounter(horizon=10.0, slots=10)
    for i in range(100_000):
        counter.add(i % 7 == 0, now=i * 0.001)
    assert len(counter._buckets) <= 12
    assert counter.counts(now=100.0).completed == pytest.approx(10_000, abs=1_000)


def success(e2e: float, ttft: float, tokens: int, epoch: int = 0) -> Sample:
    return Sample(
        Outcome.SUCCESS, 200, e2e, ttft=ttft, output_tokens=tokens, epoch=epoch, streamed=True
    )


def test_observe_feeds_every_signal_of_a_success() -> None:
    windows = SignalWindows(horizon=30.0, max_samples=100)
    windows.observe(success(e2e=1.1, ttft=0.1, tokens=11), now=1.0)
    snaps = windows.snapshots(now=1.0)
    assert snaps["e2e"].values == (1.1,)
    assert snaps["ttft"].values == (0.1,)
    assert snaps["tpot"].count == 1
    assert snaps["tpot"].values[0] == pytest.approx(0.1)


def test_overload_counts_as_outcome_but_not_as_latency() -> None:
    windows = SignalWindows(horizon=30.0, max_samples=100)
    windows.observe(Sample(Outcome.OVERLOAD, 503, 0.01), now=1.0)
    windows.observe(Sample(Outcome.IGNORED, 400, 0.01), now=1.0)
    assert windows.snapshot("e2e", now=1.0).count == 0
    counts = windows.outcomes.counts(now=1.0)
    assert (counts.success, counts.overload) == (0, 1)


def test_evidence_is_the_fresh_epochs_only() -> None:
    windows = SignalWindows(horizon=30.0, max_samples=1000)
    for i in range(30):
        windows.observe(success(e2e=5.0, ttft=2.0, tokens=2, epoch=1), now=i * 0.1)
    for i in range(5):
        windows.observe(success(e2e=1.0, ttft=0.1, tokens=2, epoch=2), now=3 + i * 0.1)
    windows.observe(Sample(Outcome.OVERLOAD, 503, 0.5, epoch=2), now=4.0)
    ev = windows.evidence(4.0, 2, {"ttft": 0.3, "e2e": 2.0}, [])
    assert sorted(v for _, v in ev["ttft"].resolved) == [0.1] * 5
    assert sorted(v for _, v in ev["e2e"].resolved) == [1.0] * 5
    counts = windows.outcome_counts(4.0, 2)
    assert (counts.completed, counts.overload) == (6, 1)


def test_evidence_ages_are_since_the_request_was_sent() -> None:
    windows = SignalWindows(horizon=30.0, max_samples=1000)
    windows.observe(success(e2e=1.5, ttft=0.5, tokens=2), now=10.0)  # sent at 8.5
    ev = windows.evidence(12.0, 0, {"e2e": 2.0}, [])
    assert ev["e2e"].resolved == ((3.5, 1.5),)


def test_requests_in_flight_are_pending_evidence() -> None:
    windows = SignalWindows(horizon=30.0, max_samples=1000)
    waiting = Flight(sent=1.0, epoch=3, streamed=True)
    streaming = Flight(sent=2.0, epoch=3, streamed=True)
    windows.first_token(streaming, 2.4)
    streaming.first_at = 2.4
    old = Flight(sent=0.0, epoch=2, streamed=True)  # admitted under the previous limit
    targets = {"ttft": 0.3, "tpot": 0.05, "e2e": 9.0}
    ev = windows.evidence(5.0, 3, targets, [waiting, streaming, old])
    assert ev["ttft"].pending == (4.0,)  # only the one with no first token yet
    assert [v for _, v in ev["ttft"].resolved] == [pytest.approx(0.4)]
    assert ev["tpot"].resolved == ev["tpot"].pending == ()  # known only at the end
    assert sorted(ev["e2e"].pending) == [3.0, 4.0]


def test_a_signal_this_traffic_never_measures_is_left_out() -> None:
    windows = SignalWindows(horizon=30.0, max_samples=1000)
    for i in range(20):  # whole answers: no first-token time, no token count
        windows.observe(Sample(Outcome.SUCCESS, 200, 1.0), now=i)
    whole = Flight(sent=19.5, epoch=0, streamed=False)
    ev = windows.evidence(20.0, 0, {"ttft": 0.3, "e2e": 2.0}, [whole])
    assert set(ev) == {"e2e"}


def test_the_good_rate_is_over_the_span_the_outcomes_arrived_in() -> None:
    # An epoch begun at 0 whose first outcomes arrive at 10 s (a service time later):
    # 20 met in [10, 20) is 2/s, not 1/s over the epoch's age; and outcomes that
    # expired from the horizon no longer count in the span either.
    counter = OutcomeCounter(horizon=30.0, slots=30)
    for i in range(20):
        counter.add(False, 10.0 + i * 0.5, epoch=1, met=True)
    assert counter.counts(20.0, min_epoch=1).rate(20.0) == pytest.approx(2.0)
    assert counter.counts(100.0, min_epoch=1).rate(100.0) == 0.0
    assert OutcomeCounts().rate(5.0) == 0.0
