"""The generated battery: its cases cover the space, and a scaled-down run of a few
cheap ones behaves (the adaptive proxy near its oracle), on virtual time."""

from __future__ import annotations

from dataclasses import replace

import pytest

from proxy.scenarios.battery import PROFILES, SHAPES, SLA_KINDS, generate
from proxy.scenarios.judge import CaseResult, judge


def test_the_battery_covers_every_profile_sla_kind_and_shape() -> None:
    cases = generate(seed=0, count=24)
    kinds = {(c.profile, c.name.split("-")[2]) for c in cases}
    assert kinds == {(p, k) for p in PROFILES for k in SLA_KINDS}
    assert {c.shape for c in cases} == set(SHAPES)
    assert generate(seed=0, count=24) == cases  # a seed is a battery
    assert generate(seed=1, count=24) != cases


def test_every_case_has_a_target_and_a_run_long_enough_for_it() -> None:
    for case in generate(seed=0, count=24):
        assert case.sla and all(t > 0 for t in case.sla.values())
        assert case.duration >= min(900.0, 5 * max(case.sla.values()))


@pytest.mark.parametrize("index", [9, 23])  # cpu-tiny cases: cheap to simulate
def test_a_scaled_down_case_stays_near_its_oracle(index: int) -> None:
    case = replace(generate(seed=0, count=24)[index], scale=0.4)
    result = judge(case)
    assert result.oracle > 0
    assert result.ratio >= 0.8, result.row()
    assert result.worst_p90 <= 1.25, result.row()


def _result(**values: object) -> CaseResult:
    fields: dict[str, object] = {
        "case": generate(0, 1)[0],
        "capacity": 10.0,
        "knee": 10,
        "oracle_limit": 10,
        "oracle": 10.0,
        "no_proxy": 1.0,
        "best_fixed": 10.0,
        "adaptive": 10.0,
        "p90_ratio": {"ttft": 1.0},
        "shed": 0.0,
    }
    return CaseResult(**{**fields, **values})  # type: ignore[arg-type]


def test_a_p90_over_the_allowance_fails_unless_the_oracle_misses_it_too() -> None:
    assert not _result(p90_ratio={"ttft": 1.2}).passed
    assert _result(p90_ratio={"ttft": 1.2}, oracle_p90_ratio={"ttft": 1.5}).passed
    assert not _result(p90_ratio={"ttft": 1.8}, oracle_p90_ratio={"ttft": 1.5}).passed


def test_fewer_good_requests_than_no_proxy_beyond_count_noise_is_caught() -> None:
    seconds = _result().case.duration - _result().case.warmup
    count = 10.0 * seconds
    noise = 2.0 * count**0.5 / seconds  # two Poisson sd, per second
    assert _result(no_proxy=10.0, adaptive=10.0 - 0.9 * noise).beats_no_proxy
    assert not _result(no_proxy=10.0, adaptive=10.0 - 1.1 * noise).beats_no_proxy
