"""The queue's speed: releases per second, counted only while the limit is full."""

from __future__ import annotations

import pytest

from proxy.core.drain import MIN_EVIDENCE, DrainRate


def saturated_releases(rate: DrainRate, start: float, per_second: float, count: int) -> float:
    now = start
    rate.set_saturated(now, True)
    for _ in range(count):
        now += 1.0 / per_second
        rate.record_release(now)
    return now


def test_no_evidence_no_rate() -> None:
    rate = DrainRate(time_constant=10.0)
    saturated_releases(rate, 0.0, 5.0, MIN_EVIDENCE - 1)
    assert rate.rate(1.0) is None


def test_steady_releases_give_their_rate() -> None:
    rate = DrainRate(time_constant=10.0)
    now = saturated_releases(rate, 0.0, 5.0, 200)
    assert rate.rate(now) == pytest.approx(5.0, rel=0.05)


def test_idle_time_does_not_read_as_lost_capacity() -> None:
    rate = DrainRate(time_constant=10.0)
    now = saturated_releases(rate, 0.0, 5.0, 200)
    before = rate.rate(now)
    rate.set_saturated(now, False)
    assert rate.rate(now + 3600.0) == pytest.approx(before)  # an idle hour changes nothing
