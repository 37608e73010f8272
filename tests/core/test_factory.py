from __future__ import annotations

from typing import Any

import pytest

from proxy import factory
from proxy.core.aimd import AIMDController
from proxy.core.fixed import FixedController
from proxy.core.gradient import GradientController
from tests.helpers.controllers import ObsFactory
from tests.helpers.settings import make_settings


def settings(**values: Any) -> Any:
    return make_settings(**values)


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [("aimd", AIMDController), ("gradient", GradientController), ("fixed", FixedController)],
)
def test_builds_the_named_algorithm(algorithm: str, kind: type) -> None:
    assert isinstance(factory.controller(settings(algorithm=algorithm)), kind)


def test_default_is_aimd() -> None:
    assert isinstance(factory.controller(settings()), AIMDController)


def test_aimd_takes_its_knobs_from_settings(make_obs: ObsFactory) -> None:
    controller = factory.controller(
        settings(backoff=0.5, min_limit=4, initial_limit=40, sla_percentile=0.95)
    )
    decision = controller.decide(make_obs(limit=40, percentiles={"ttft": 1.0}))
    assert decision.limit == 20
    assert decision.reason.startswith("ttft p95 ")
    assert controller.decide(make_obs(limit=5, percentiles={"ttft": 1.0})).limit == 4


def test_min_samples_setting_gates_overload_only_growth(make_obs: ObsFactory) -> None:
    controller = factory.controller(settings(window_min_samples=50))
    assert controller.decide(make_obs(targets={}, completed=49)).cause == "thin_data"
    assert controller.decide(make_obs(targets={}, completed=50)).cause == "slow_start"


def test_fixed_holds_the_initial_limit(make_obs: ObsFactory) -> None:
    controller = factory.controller(settings(algorithm="fixed", initial_limit=24))
    assert controller.decide(make_obs(limit=24, percentiles={"ttft": 9.0})).limit == 24


def test_gradient_starts_from_the_initial_limit() -> None:
    controller = factory.controller(settings(algorithm="gradient", initial_limit=24))
    assert isinstance(controller, GradientController)
    assert controller.estimate == 24.0


def test_windows_and_alert_from_settings() -> None:
    s = settings(window_seconds=5.0, window_max_samples=16, alert_for=10.0)
    windows = factory.windows(s)
    assert {w.horizon for w in windows.windows.values()} == {5.0}
    assert {w.max_samples for w in windows.windows.values()} == {16}
    alert = factory.alert(s, start=0.0)
    assert (alert.for_seconds, alert.rate_window) == (10.0, 5.0)


def test_admission_is_wired_to_its_alert_feed() -> None:
    admission, feed = factory.admission(settings(initial_limit=12, queue_size=3))
    assert (admission.limiter.limit, admission.limiter.queue_size) == (12, 3)
    assert feed in admission.listeners
