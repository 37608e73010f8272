from __future__ import annotations

from typing import Any

import pytest

from proxy.core.aimd import AIMDController
from proxy.core.alert import CapacityAlert
from proxy.core.factory import build_controller
from proxy.core.fixed import FixedController
from proxy.core.gradient import GradientController
from proxy.core.window import SignalWindows
from proxy.settings import Settings

from .conftest import ObsFactory


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [("aimd", AIMDController), ("gradient", GradientController), ("fixed", FixedController)],
)
def test_builds_the_named_algorithm(algorithm: str, kind: type) -> None:
    assert isinstance(build_controller(settings(algorithm=algorithm)), kind)


def test_default_is_aimd() -> None:
    assert isinstance(build_controller(settings()), AIMDController)


def test_aimd_takes_its_knobs_from_settings(make_obs: ObsFactory) -> None:
    controller = build_controller(
        settings(backoff=0.5, min_limit=4, initial_limit=40, sla_percentile=0.95)
    )
    decision = controller.decide(make_obs(limit=40, percentiles={"ttft": 1.0}))
    assert decision.limit == 20
    assert decision.reason.startswith("ttft p95 ")
    assert controller.decide(make_obs(limit=5, percentiles={"ttft": 1.0})).limit == 4


def test_min_samples_setting_gates_overload_only_growth(make_obs: ObsFactory) -> None:
    controller = build_controller(settings(window_min_samples=50))
    assert controller.decide(make_obs(targets={}, completed=49)).cause == "thin_data"
    assert controller.decide(make_obs(targets={}, completed=50)).cause == "slow_start"


def test_fixed_holds_the_initial_limit(make_obs: ObsFactory) -> None:
    controller = build_controller(settings(algorithm="fixed", initial_limit=24))
    assert controller.decide(make_obs(limit=24, percentiles={"ttft": 9.0})).limit == 24


def test_gradient_starts_from_the_initial_limit() -> None:
    controller = build_controller(settings(algorithm="gradient", initial_limit=24))
    assert isinstance(controller, GradientController)
    assert controller.estimate == 24.0


def test_windows_and_alert_from_settings() -> None:
    s = settings(window_seconds=5.0, window_max_samples=16, alert_for=10.0)
    windows = SignalWindows.from_settings(s)
    assert {w.horizon for w in windows.windows.values()} == {5.0}
    assert {w.max_samples for w in windows.windows.values()} == {16}
    alert = CapacityAlert.from_settings(s, start=0.0)
    assert (alert.for_seconds, alert.rate_window) == (10.0, 5.0)
