"""Settings -> the admission objects, in one place: the only module that knows both
the configuration schema and the constructors (the pure core never sees Settings).
The server and the scenario harness build admission through here, so they can
never be configured differently."""

from __future__ import annotations

import time
from collections.abc import Callable

from proxy.admission import Admission
from proxy.alerting import AlertFeed
from proxy.control import ControlLoop
from proxy.core.aimd import AIMDController
from proxy.core.alert import CapacityAlert
from proxy.core.controller import Controller, Policy
from proxy.core.ejection import EjectionPolicy
from proxy.core.fixed import FixedController
from proxy.core.sla import Sla
from proxy.core.window import SignalWindows
from proxy.limiter import Limiter
from proxy.settings import Algorithm, Settings


def policy(settings: Settings) -> Policy:
    return Policy(
        min_limit=settings.min_limit,
        max_limit=settings.max_limit,
        percentile=settings.sla_percentile,
        confidence=settings.decision_confidence,
        min_samples=settings.window_min_samples,
        overload_threshold=settings.overload_threshold,
        utilization_threshold=settings.utilization_threshold,
    )


def sla(settings: Settings) -> Sla:
    return Sla(settings.sla_targets(), settings.sla_percentile)


def controller(settings: Settings) -> Controller:
    match settings.algorithm:
        case Algorithm.AIMD:
            return AIMDController(
                policy(settings), increase_step=settings.increase_step, backoff=settings.backoff
            )
        case Algorithm.FIXED:
            return FixedController(settings.initial_limit)


def windows(settings: Settings) -> SignalWindows:
    return SignalWindows(settings.window_seconds, settings.window_max_samples)


def alert(settings: Settings, start: float | None = None) -> CapacityAlert:
    return CapacityAlert(
        start=start,
        shed_ratio=settings.alert_shed_ratio,
        for_seconds=settings.alert_for,
        resolve_after=settings.alert_resolve_after,
        sla_percentile=settings.sla_percentile,
    )


def ejection(settings: Settings) -> EjectionPolicy:
    return EjectionPolicy(
        after=settings.eject_threshold,
        server_errors=settings.eject_server_errors,
        base=settings.eject_seconds,
    )


def pool_alert(settings: Settings, clock: Callable[[], float]) -> AlertFeed:
    """The capacity alert of a pool (fed the pool's ticks: the sum of its members)."""
    return AlertFeed(alert(settings, start=clock()), settings.min_limit)


def member(settings: Settings, clock: Callable[[], float], limit: int | None = None) -> Admission:
    """One pool member's limiter and control loop: no queue of its own (the pool's
    queue is in front of every member), its own controller and windows."""
    return Admission(*_limiter_and_control(settings, clock, 0, limit))


def restart(admission: Admission, settings: Settings) -> None:
    """A member back in rotation: a fresh controller and windows (what it learnt
    before its ejection is no evidence now), from a low limit that grows on evidence."""
    control = admission.control
    control.controller = controller(settings)
    control.windows = windows(settings)
    admission.limiter.set_limit(min(settings.initial_limit, admission.limiter.limit))


def _limiter_and_control(
    settings: Settings, clock: Callable[[], float], queue_size: int, limit: int | None = None
) -> tuple[Limiter, ControlLoop]:
    limiter = Limiter(limit or settings.initial_limit, queue_size, clock=clock)
    control = ControlLoop(
        limiter,
        controller(settings),
        windows(settings),
        sla(settings),
        interval=settings.control_interval,
        min_samples=settings.window_min_samples,
        queue_timeout=settings.queue_timeout,
        clock=clock,
    )
    return limiter, control


def admission(
    settings: Settings, clock: Callable[[], float] = time.perf_counter
) -> tuple[Admission, AlertFeed]:
    """The limiter, control loop and capacity alert one proxy runs, wired together."""
    built = Admission(*_limiter_and_control(settings, clock, settings.queue_size))
    feed = AlertFeed(alert(settings, start=clock()), settings.min_limit)
    built.subscribe(feed)
    return built, feed
