from __future__ import annotations

import pytest

from proxy.core.alert import AlertSnapshot, AlertState, CapacityAlert, Condition, replicas_needed

FOR, RESOLVE = 20.0, 30.0  # rate window: 10 s (half of `for`)


def new_alert() -> CapacityAlert:
    return CapacityAlert(start=0.0, shed_ratio=0.1, for_seconds=FOR, resolve_after=RESOLVE)


class Driver:
    """Ticks once per simulated second with per-second counts."""

    def __init__(self, alert: CapacityAlert) -> None:
        self.alert, self.now = alert, 0.0

    def run(
        self,
        seconds: int,
        *,
        arrivals: int = 40,
        shed: int = 0,
        served: int = 40,
        limit: int = 32,
        breached: bool = False,
    ) -> list[AlertSnapshot]:
        snapshots = []
        for _ in range(seconds):
            self.now += 1.0
            snapshots.append(
                self.alert.update(
                    self.now,
                    arrivals=arrivals,
                    shed=shed,
                    served_at_sla=served,
                    limit=limit,
                    min_limit=1,
                    sla_breached=breached,
                )
            )
        return snapshots


def overloaded(driver: Driver, seconds: int) -> list[AlertSnapshot]:
    # 20 of 40 req/s admitted; 18 of those (90%, just the P90 SLA) within target
    return driver.run(seconds, arrivals=40, shed=20, served=18)


def test_fires_after_sustained_shedding() -> None:
    driver = Driver(new_alert())
    snaps = overloaded(driver, 25)
    assert snaps[0].state is AlertState.PENDING
    states = [s.state for s in snaps]
    fired = states.index(AlertState.FIRING)
    assert snaps[fired].since - snaps[0].since == FOR
    assert all(s is AlertState.PENDING for s in states[:fired])
    assert snaps[-1].firing and snaps[-1].condition is Condition.SHEDDING


def test_short_burst_does_not_fire() -> None:
    driver = Driver(new_alert())
    driver.run(30)
    burst = overloaded(driver, 9)  # shorter than half of `for`
    after = driver.run(60)
    assert AlertState.PENDING in {s.state for s in burst}
    assert all(s.state is not AlertState.FIRING for s in burst + after)
    assert after[-1].state is AlertState.INACTIVE


def test_shed_ratio_at_threshold_is_healthy() -> None:
    snaps = Driver(new_alert()).run(60, arrivals=40, shed=4, served=36)
    assert {s.state for s in snaps} == {AlertState.INACTIVE}


def test_fires_when_limit_pinned_at_floor_while_breached() -> None:
    driver = Driver(new_alert())
    snaps = driver.run(25, arrivals=2, shed=0, served=0, limit=1, breached=True)
    assert snaps[-1].firing
    assert snaps[-1].condition is Condition.FLOOR_BREACH
    assert "(limit 1)" in snaps[-1].description


def test_floor_without_breach_is_healthy() -> None:
    snaps = Driver(new_alert()).run(40, arrivals=2, served=2, limit=1, breached=False)
    assert snaps[-1].state is AlertState.INACTIVE


def test_resolves_only_after_the_healthy_period() -> None:
    driver = Driver(new_alert())
    overloaded(driver, 30)
    healthy = driver.run(int(RESOLVE) + 20)
    states = [s.state for s in healthy]
    resolved = states.index(AlertState.RESOLVED)
    # the windowed shed ratio stays high for a while after shedding stops
    first_healthy = next(i for i, s in enumerate(healthy) if s.condition is None)
    assert resolved - first_healthy == RESOLVE
    assert all(s is AlertState.FIRING for s in states[:resolved])
    assert healthy[resolved].resolved_at == healthy[resolved].since
    assert states[resolved + 1] is AlertState.INACTIVE


def test_relapse_while_firing_restarts_the_healthy_period() -> None:
    driver = Driver(new_alert())
    overloaded(driver, 30)
    driver.run(int(RESOLVE) - 5)  # healthy, not long enough (plus the window's lag)
    overloaded(driver, 3)
    after = driver.run(int(RESOLVE) - 5)
    assert all(s.firing for s in after)


def test_pending_lapses_back_to_inactive() -> None:
    driver = Driver(new_alert())
    overloaded(driver, 3)
    snaps = driver.run(20)
    assert snaps[-1].state is AlertState.INACTIVE
    assert snaps[-1].fired_at is None


def test_description_carries_rates_and_replicas() -> None:
    driver = Driver(new_alert())
    snap = overloaded(driver, 25)[-1]
    assert snap.arrival_rate == pytest.approx(40.0)
    assert snap.served_rate == pytest.approx(18.0)
    assert snap.capacity_rate == pytest.approx(20.0)
    assert snap.shed_ratio == pytest.approx(0.5)
    assert snap.replicas_needed == 1
    assert "demand 40.0 req/s" in snap.description
    assert "served within the SLA 18.0 req/s" in snap.description
    assert "capacity at the SLA about 20.0 req/s" in snap.description
    assert "50% shed" in snap.description
    assert "about 1 more upstream replica needed" in snap.description
    assert snap.as_dict()["state"] == "firing"


def test_rates_before_the_window_fills_use_elapsed_time() -> None:
    driver = Driver(CapacityAlert(start=0.0, for_seconds=60.0))
    snap = driver.run(4, arrivals=10, served=10)[-1]
    assert snap.arrival_rate == pytest.approx(10.0)


def test_without_start_the_first_update_sets_the_origin() -> None:
    alert = CapacityAlert(for_seconds=20.0)
    common = {"shed": 0, "limit": 8, "min_limit": 1, "sla_breached": False}
    first = alert.update(100.0, arrivals=999, served_at_sla=999, **common)  # type: ignore[arg-type]
    assert first.arrival_rate == 0.0
    second = alert.update(101.0, arrivals=5, served_at_sla=5, **common)  # type: ignore[arg-type]
    assert second.arrival_rate == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("arrival", "served", "more"),
    [(0.0, 0.0, 0), (10.0, 10.0, 0), (20.0, 10.0, 1), (21.0, 10.0, 2), (5.0, 0.0, None)],
)
def test_replicas_needed(arrival: float, served: float, more: int | None) -> None:
    assert replicas_needed(arrival, served) == more


def test_exact_multiple_is_not_rounded_up() -> None:
    assert replicas_needed(0.3 * 3, 0.3) == 2


def test_three_times_the_capacity_needs_two_more_replicas() -> None:
    snap = Driver(new_alert()).run(25, arrivals=60, shed=40, served=18)[-1]
    assert snap.replicas_needed == 2


def test_healthy_upstream_needs_no_more_replicas() -> None:
    # every request admitted, 90% within target: the SLA holds exactly
    snap = Driver(new_alert()).run(30, arrivals=40, shed=0, served=36)[-1]
    assert snap.replicas_needed == 0
    assert "no more upstream replicas needed" in snap.description


def test_floor_breach_with_nothing_served_cannot_estimate_replicas() -> None:
    snap = Driver(new_alert()).run(25, arrivals=2, served=0, limit=1, breached=True)[-1]
    assert snap.replicas_needed is None
    assert "unknown" in snap.description


def test_fires_when_fewer_requests_do_not_relieve_the_breach() -> None:
    alert = new_alert()
    for t in range(25):
        snap = alert.update(
            float(t), arrivals=2, shed=0, served_at_sla=0, limit=40, min_limit=1, sla_breached=True,
            floor=True,
        )  # fmt: skip
    assert snap.firing and snap.condition is Condition.FLOOR_BREACH
