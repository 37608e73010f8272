from __future__ import annotations

from typing import Any

import pytest

from proxy import factory
from proxy.core.aimd import AIMDController
from proxy.core.fixed import FixedController
from tests.helpers.controllers import ObsFactory, evidence
from tests.helpers.settings import make_settings


def settings(**values: Any) -> Any:
    return make_settings(**values)


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [("aimd", AIMDController), ("fixed", FixedController)],
)
def test_builds_the_named_algorithm(algorithm: str, kind: type) -> None:
    assert isinstance(factory.controller(settings(algorithm=algorithm)), kind)


def test_default_is_aimd() -> None:
    assert isinstance(factory.controller(settings()), AIMDController)


def test_aimd_takes_its_knobs_from_settings(make_obs: ObsFactory) -> None:
    controller = factory.controller(
        settings(backoff=0.5, min_limit=4, initial_limit=40, sla_percentile=0.95)
    )
    slow = {"ttft": evidence(0.3, [3.0] * 10)}
    decision = controller.decide(make_obs(limit=40, signals=slow))
    assert decision.limit == 20
    assert decision.reason.startswith("ttft p95 ")
    floor = factory.controller(settings(min_limit=4, initial_limit=40))
    assert floor.decide(make_obs(limit=5, signals=slow)).limit == 4


def test_confidence_and_min_samples_come_from_settings() -> None:
    controller = factory.controller(settings(decision_confidence=0.99, window_min_samples=7))
    assert isinstance(controller, AIMDController)
    assert (controller.policy.confidence, controller.policy.min_samples) == (0.99, 7)


def test_fixed_holds_the_initial_limit(make_obs: ObsFactory) -> None:
    controller = factory.controller(settings(algorithm="fixed", initial_limit=24))
    slow = {"ttft": evidence(0.3, [9.0] * 10)}
    assert controller.decide(make_obs(limit=24, signals=slow)).limit == 24


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
