"""Running one battery case and judging it against its own oracle.

1. Calibration: the engine's capacity at the case's SLA, measured, not assumed: the
   case's length mix at a 2x overload through fixed limits on a grid around the
   roofline's guess (`battery.estimate`), refined around the best; the best
   goodput is the capacity its load shape is scaled to.
2. The oracle: the same arrivals through fixed limits on a grid around the
   calibrated knee (fine near it, coarse away), refined around the best, and
   through no proxy at all. The best of them is what a static choice could do.
3. The adaptive run: the defaults with only the SLA set.

Everything is judged from the client's side over the same span: goodput counts a
request when it finished and met every target, its queue wait included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from proxy.scenarios import harness
from proxy.scenarios.battery import Case, estimate
from proxy.scenarios.harness import RunConfig, RunResult
from proxy.scenarios.metrics import Span, first_within, goodput, limit_series, shed_ratio
from proxy.scenarios.metrics import signal_percentile as p90_of
from proxy.settings import Algorithm, Settings

# Grids of fixed limits, as multiples of a first guess: coarse, then refined around
# the best. Goodput falls off steeply past the knee, so the oracle's grid is fine
# near the calibrated knee and coarse away from it.
CALIBRATION_GRID = (0.35, 0.7, 1.4, 2.8)
REFINE = (0.8, 1.25)
ORACLE_GRID = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.2)
ORACLE_REFINE = (0.93, 1.07)
CALIBRATION_SECONDS = 40.0
# The goals (issue 9): each case at least 0.90 of its oracle with every set signal's
# client P90 within 1.1 x its target.
CASE_RATIO, P90_ALLOWANCE = 0.90, 1.10
MAX_LIMIT = 4096
BAND = 0.15  # the cold-start goal: within 15% of the oracle limit...
COLD_RATE = 20.0  # ...in 10 s, at this many requests/s offered or more


@dataclass
class CaseResult:
    case: Case
    capacity: float
    knee: int  # calibrated best fixed limit
    oracle_limit: int | None  # None: no proxy was the best static choice
    oracle: float  # best static goodput (fixed limits and no proxy)
    no_proxy: float
    best_fixed: float
    adaptive: float
    p90_ratio: dict[str, float | None]  # adaptive client P90 / target, per set signal
    # The same for the oracle's run: where even the best static choice misses a target
    # (a length shift that puts the latency floor over it), no controller can meet it,
    # and the adaptive run is held to the oracle's P90 instead.
    shed: float
    oracle_p90_ratio: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.adaptive / self.oracle if self.oracle > 0 else 1.0

    @property
    def worst_p90(self) -> float:
        values = [v for v in self.p90_ratio.values() if v is not None]
        return max(values, default=0.0)

    @property
    def beats_no_proxy(self) -> bool:
        """At least as many good requests as no proxy, up to two Poisson standard
        deviations of no proxy's count over the span (a margin from the statistics of
        a count, not a tuned one)."""
        seconds = self.case.duration - self.case.warmup
        count = self.no_proxy * seconds
        return self.adaptive * seconds >= count - 2.0 * math.sqrt(count)

    @property
    def p90_held(self) -> bool:
        """Every set signal's client P90 within the allowance of its target, or (when
        the oracle misses that too) of the oracle's."""
        for signal, value in self.p90_ratio.items():
            if value is None:
                continue
            allowed = max(1.0, self.oracle_p90_ratio.get(signal) or 0.0)
            if value > P90_ALLOWANCE * allowed:
                return False
        return True

    @property
    def passed(self) -> bool:
        ok = self.ratio >= CASE_RATIO and self.p90_held
        if "cold_reached_s" in self.extra:
            reached = self.extra["cold_reached_s"]
            ok &= reached is not None and reached <= 10.0 and self.extra["cold_shed"] == 0
        return ok

    def row(self) -> dict[str, Any]:
        return {
            "case": self.case.name,
            "setup": self.case.describe(),
            "capacity req/s": round(self.capacity, 2),
            "oracle": "no proxy" if self.oracle_limit is None else f"fixed {self.oracle_limit}",
            "oracle goodput": round(self.oracle, 2),
            "no proxy": round(self.no_proxy, 2),
            "adaptive": round(self.adaptive, 2),
            "ratio": round(self.ratio, 3),
            "worst client P90 / target": round(self.worst_p90, 3),
            "oracle's": round(
                max((v for v in self.oracle_p90_ratio.values() if v), default=0.0), 3
            ),
            "shed %": round(100 * self.shed, 1),
            **{k: v for k, v in self.extra.items()},
            "passed": self.passed,
        }


def settings_for(case: Case, **values: Any) -> Settings:
    return Settings(_env_file=None, **{**case.sla, **values})


def fixed_settings(case: Case, limit: int) -> Settings:
    limit = max(1, min(MAX_LIMIT, limit))
    return settings_for(case, algorithm=Algorithm.FIXED, initial_limit=limit, max_limit=MAX_LIMIT)


def _run(case: Case, settings: Settings | None, capacity: float, shaped: bool = True) -> RunResult:
    return harness.run(
        RunConfig(
            case.engine,
            case.load(capacity, shaped),
            settings,
            faults=case.faults() if shaped else (),
            seed=case.seed,
            drain=30.0,
        )
    )


def _calibration_goodput(case: Case, limit: int, offered: float) -> float:
    result = _run(case, fixed_settings(case, limit), offered / 2.0, shaped=False)
    targets = settings_for(case).sla_targets()
    return goodput(result.requests, targets, Span(15.0, CALIBRATION_SECONDS))


def calibrate(case: Case) -> tuple[float, int]:
    """(capacity within the SLA in requests/s, the fixed limit that reaches it)."""
    guess_limit, guess_rate = estimate(case)
    offered = max(0.5, guess_rate) * 2.0
    best = (0.0, guess_limit)
    for _ in range(3):
        tried: dict[int, float] = {}
        for grid, centre in ((CALIBRATION_GRID, guess_limit), (REFINE, None)):
            if centre is None:
                centre = max(tried, key=lambda k: tried[k])
            for limit in sorted({max(1, round(centre * m)) for m in grid}):
                if limit not in tried:
                    tried[limit] = _calibration_goodput(case, limit, offered)
        top = max(tried, key=lambda k: tried[k])
        best = (tried[top], top)
        if best[0] < 0.8 * offered:  # the overload really saturated the engine
            break
        offered *= 3.0
        guess_limit = top
    return best


def judge(case: Case) -> CaseResult:
    capacity, knee = calibrate(case)
    capacity = max(capacity, 0.05)
    targets = settings_for(case).sla_targets()
    span = Span(case.warmup, case.duration)
    fixed: dict[int, RunResult] = {}

    def run_fixed(limits: list[int]) -> None:
        for limit in limits:
            limit = max(1, min(MAX_LIMIT, limit))
            if limit not in fixed:
                fixed[limit] = _run(case, fixed_settings(case, limit), capacity)

    def good(result: RunResult) -> float:
        return goodput(result.requests, targets, span)

    run_fixed(sorted({round(knee * m) for m in ORACLE_GRID}))
    top = max(fixed, key=lambda k: good(fixed[k]))
    run_fixed(sorted({round(top * m) for m in ORACLE_REFINE}))
    top = max(fixed, key=lambda k: good(fixed[k]))
    direct = _run(case, None, capacity)
    adaptive = _run(case, settings_for(case), capacity)
    best_fixed, no_proxy = good(fixed[top]), good(direct)
    extra: dict[str, Any] = {}
    series = [(t, float(v)) for t, v in limit_series(adaptive.ticks)]
    if case.shape == "cold" and 2.0 * capacity >= COLD_RATE:
        reached = first_within(series, top, BAND)
        extra["cold_reached_s"] = None if reached is None else round(reached, 2)
        until = reached if reached is not None else case.duration
        extra["cold_shed"] = sum(1 for r in adaptive.requests if r.shed and r.arrival < until)
    if case.shape == "swing":
        extra["swing_gain"] = round(good(adaptive) / best_fixed, 3) if best_fixed > 0 else math.inf
    return CaseResult(
        case=case,
        capacity=capacity,
        knee=knee,
        oracle_limit=None if no_proxy > best_fixed else top,
        oracle=max(best_fixed, no_proxy),
        no_proxy=no_proxy,
        best_fixed=best_fixed,
        adaptive=good(adaptive),
        p90_ratio=_p90_ratios(adaptive, targets, span),
        oracle_p90_ratio=_p90_ratios(
            direct if no_proxy > best_fixed else fixed[top], targets, span
        ),
        shed=shed_ratio(adaptive.requests, span),
        extra=extra,
    )


def _p90_ratios(
    result: RunResult, targets: dict[str, float], span: Span
) -> dict[str, float | None]:
    return {
        s: (None if (v := p90_of(result.requests, s, span)) is None else round(v / t, 3))
        for s, t in targets.items()
    }
