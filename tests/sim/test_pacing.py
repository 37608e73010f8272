"""Speed factor: the wall-clock sleep is simulated time / speed, batched by granularity."""

import pytest

from proxy.sim.pacing import Pacer


def test_wall_sleep_is_simulated_time_divided_by_speed() -> None:
    pacer = Pacer(speed=10, granularity=0.001)
    pacer.rebase(sim_now=0.0, wall_now=100.0)
    assert pacer.sleep_for(sim_now=0.5, wall_now=100.0) == pytest.approx(0.05)


def test_debt_below_granularity_is_carried_not_slept() -> None:
    pacer = Pacer(speed=10, granularity=0.001)
    pacer.rebase(0.0, 0.0)
    assert pacer.sleep_for(sim_now=0.005, wall_now=0.0) == 0.0  # 0.5 ms owed
    assert pacer.sleep_for(sim_now=0.012, wall_now=0.0) == pytest.approx(0.0012)


def test_time_already_spent_computing_is_not_slept_again() -> None:
    pacer = Pacer(speed=1, granularity=0.001)
    pacer.rebase(0.0, 0.0)
    assert pacer.sleep_for(sim_now=0.010, wall_now=0.004) == pytest.approx(0.006)


def test_falling_far_behind_rebases_instead_of_racing() -> None:
    pacer = Pacer(speed=1, granularity=0.001, max_lag=0.05)
    pacer.rebase(0.0, 0.0)
    assert pacer.sleep_for(sim_now=0.1, wall_now=1.0) == 0.0
    assert pacer.sleep_for(sim_now=0.11, wall_now=1.0) == pytest.approx(0.01)


def test_wall_and_sim_clocks_map_both_ways() -> None:
    pacer = Pacer(speed=4)
    pacer.rebase(sim_now=10.0, wall_now=2.0)
    assert pacer.to_sim(3.0) == pytest.approx(14.0)
    assert pacer.to_wall(14.0) == pytest.approx(3.0)


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(speed=0)
