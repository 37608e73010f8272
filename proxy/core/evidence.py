"""What the fresh samples of one signal say about its SLA, as a statistical finding.

An SLA "P90 <= T" is a statement about a proportion: at most a fraction
alpha = 1 - 0.9 of requests may miss T. So each decision is a test on the miss
fraction of the requests admitted under the current limit, at a stated confidence:

- OVER when the misses seen would be unlikely (probability <= 1 - confidence) if
  the true miss fraction were only alpha: an exact binomial tail, so three misses
  in three requests decide at once and a marginal breach needs thousands;
- UNDER(g) when the signal's quantile is at most T / g with that confidence,
  g >= 1: g is the headroom the evidence proves. Two ways to bound the quantile:
  the order statistic the binomial tail allows (with n values, at most k of them
  may lie above the bound for alpha to remain plausible), or, with only a handful
  of values far from the target, a one-sided tolerance bound of the log-normal fit
  to them. The tolerance bound assumes independent values, and requests finishing
  together share one batch, so it only counts where it shows a third of the target
  to spare (g >= 1.5);
- INCONCLUSIVE otherwise: hold.

Censoring: a request still in flight past T has already missed T (no first token
after the TTFT target, still running after the E2E target), so a hang or a sudden
slowdown counts within one target time. For the UNDER test only requests sent at
least T / g ago are judged (every one of them is known to have met T / g or not);
younger ones would bias the count towards the fast requests that already finished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from statistics import NormalDist

from proxy.core.stats import percentile_sorted

# The tolerance bound (independent samples assumed) decides only with this much
# headroom: samples a few hundred milliseconds apart share a batch, so their spread
# understates the spread over time; a third of the target to spare covers that.
TOLERANCE_HEADROOM = 1.5
# The headrooms judged, largest first: from "a quarter of the target" (growth is
# capped at doubling anyway) down to "under the target itself".
HEADROOM_STEPS = (4.0, 3.0, 2.0, 1.5, 1.25, 1.1, 1.0)


class Kind(StrEnum):
    OVER = "over"
    UNDER = "under"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class SignalEvidence:
    """One targeted signal's fresh requests at one moment (pure data, times in seconds).

    `resolved`: (seconds since the request was sent, its value), for requests whose
    value is known (TTFT at the first token, E2E at the end; TPOT from the tokens so
    far). `pending`: seconds since sent of requests with no value yet; each one's value
    is at least that (censored). Signals that cannot be censored (TPOT) have none."""

    target: float
    resolved: tuple[tuple[float, float], ...]
    pending: tuple[float, ...] = ()
    # Values so far of requests still running (TPOT from the tokens so far): estimates,
    # not outcomes, so only slow start's estimate reads them. (Judging breaches on them
    # cut the limit for prefill stalls early in a request: measured in the scenarios.)
    partial: tuple[float, ...] = ()
    # The fastest this signal has ever been (any epoch, any load): what a request costs
    # with no one else on the engine, the part of the latency concurrency does not add.
    floor: float = 0.0

    def concurrency_headroom(self, latency_headroom: float) -> float:
        """How much more concurrency the latency headroom g (quantile <= target / g)
        leaves, if latency grows linearly with concurrency from the floor: (T - a) /
        (T / g - a). Never less than g itself (the proportional model, a = 0)."""
        bound = self.target / latency_headroom
        if bound <= self.floor:
            return math.inf
        return max(latency_headroom, (self.target - self.floor) / (bound - self.floor))

    @property
    def count(self) -> int:
        return len(self.resolved) + len(self.pending)

    def misses(self) -> int:
        """Known misses of the target: measured over it, or still waiting past it."""
        target = self.target
        return sum(1 for _, v in self.resolved if v > target) + sum(
            1 for age in self.pending if age > target
        )

    def quantile(self, q: float) -> float | None:
        """The q-quantile of what is known, pending requests at their age so far: a
        lower bound of the true quantile."""
        known = sorted([v for _, v in self.resolved] + list(self.pending))
        return percentile_sorted(known, q) if known else None


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    factor: float  # OVER: target / quantile (< 1); UNDER: the growth factor; else 1
    misses: int
    count: int
    quantile: float | None  # the value at the SLA percentile, as far as known
    how: str  # "binomial", "tolerance" or ""
    # The headroom a handful of requests suggests without proving it (0: none); what
    # slow start may act on.
    estimate: float = 0.0

    def describe(self, signal: str, target: float, label: str) -> str:
        seen = "no value" if self.quantile is None else f"{self.quantile:.3f}s"
        text = f"{signal} {label} {seen} vs target {target:.3f}s ({self.misses}/{self.count} missed"
        if self.kind is Kind.UNDER:
            return f"{text}; headroom x{self.factor:.2f} by {self.how})"
        return f"{text})"


def examine(ev: SignalEvidence, percentile: float, confidence: float, min_samples: int) -> Finding:
    """The finding for one signal: OVER, UNDER(headroom) or INCONCLUSIVE."""
    allowance = 1.0 - percentile
    risk = 1.0 - confidence
    misses, count = ev.misses(), ev.count
    quantile = ev.quantile(percentile)
    if misses > 0 and binomial_sf(misses, count, allowance) <= risk:
        # How far over. The quantile's ratio is what a latency proportional to
        # concurrency needs; but a request still in flight counts at its age so far,
        # a lower bound of its latency, and past a cliff (the engine's own
        # max_num_seqs, a full KV cache) those waiting requests are many and their
        # latency unknown. So the requests still waiting past the target also bound
        # the cut: if a share w of what is in flight waits past it, at most
        # (1 - w) / (1 - allowance) of the concurrency is served within it.
        factor = ev.target / quantile if quantile else 1.0
        waiting = sum(1 for age in ev.pending if age > ev.target)
        share = (1.0 - waiting / count) / (1.0 - allowance)
        return Finding(Kind.OVER, min(1.0, factor, share), misses, count, quantile, "binomial")
    estimate = 0.0 if misses else _estimate(ev, allowance, min_samples)
    headroom, how = _headroom(ev, allowance, risk, percentile, confidence, min_samples)
    if headroom >= 1.0:
        return Finding(Kind.UNDER, headroom, misses, count, quantile, how, estimate)
    return Finding(Kind.INCONCLUSIVE, 1.0, misses, count, quantile, "", estimate)


def _estimate(ev: SignalEvidence, allowance: float, min_samples: int) -> float:
    """The largest headroom g at which the point estimate of the quantile, from at
    least `min_samples` requests sent target / g ago or earlier, is under target / g
    (at most the allowance of them over it, waiting ones included): no proof, what
    slow start acts on. The same cohort rule as the proofs: requests too young to
    have missed are not counted. (Asking that none of them miss instead, the
    estimate of a P90 is the maximum of a handful: one long answer stops growth.)"""
    for g in HEADROOM_STEPS:
        _, n, misses = _cohort(ev, ev.target / g, ev.partial)
        if n >= min_samples and misses <= allowance * n:
            return g
    return 0.0


def _cohort(
    ev: SignalEvidence, threshold: float, extra: tuple[float, ...] = ()
) -> tuple[list[float], int, int]:
    """The requests sent at least `threshold` ago (each is known to have met it or not):
    their resolved values (and `extra` ones), how many they are with those still
    waiting, and how many missed it, the waiting ones included."""
    values = [v for age, v in ev.resolved if age >= threshold] + list(extra)
    waiting = sum(1 for age in ev.pending if age >= threshold)
    return values, len(values) + waiting, waiting + sum(1 for v in values if v > threshold)


def _headroom(
    ev: SignalEvidence,
    allowance: float,
    risk: float,
    percentile: float,
    confidence: float,
    min_samples: int,
) -> tuple[float, str]:
    """The largest of HEADROOM_STEPS g for which the evidence bounds the quantile by
    target / g, and how; (0, "") when none. At each threshold only requests sent at
    least that long ago are judged: each of them is known to have met it or not."""
    for g in HEADROOM_STEPS:
        threshold = ev.target / g
        values, n, misses = _cohort(ev, threshold)
        if n == 0:
            continue
        if binomial_cdf(misses, n, allowance) <= risk:
            return g, "binomial"
        if g >= TOLERANCE_HEADROOM and misses == 0 and len(values) >= min_samples:
            logs = [math.log(max(v, 1e-9)) for v in values]
            mean = sum(logs) / len(logs)
            sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
            bound = math.exp(mean + tolerance_factor(len(logs), percentile, confidence) * sd)
            if bound <= threshold:
                return g, "tolerance"
    return 0.0, ""


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return math.fsum(_pmf(i, n, p) for i in range(k + 1))


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if k - 1 < n - k:  # sum the shorter tail
        return max(0.0, 1.0 - binomial_cdf(k - 1, n, p))
    return math.fsum(_pmf(i, n, p) for i in range(k, n + 1))


def _pmf(i: int, n: int, p: float) -> float:
    log = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
    return math.exp(log + i * math.log(p) + (n - i) * math.log1p(-p))


@lru_cache(maxsize=512)
def tolerance_factor(n: int, percentile: float, confidence: float) -> float:
    """k such that mean + k x sd of n normal samples bounds the `percentile` quantile
    with probability `confidence` (one-sided; Natrella's approximation, within 2% of
    the exact non-central-t factor from n = 5 on)."""
    if n < 3:
        return math.inf
    normal = NormalDist()
    zq, zc = normal.inv_cdf(percentile), normal.inv_cdf(confidence)
    a = 1.0 - zc * zc / (2.0 * (n - 1))
    b = zq * zq - zc * zc / n
    if a <= 0 or zq * zq - a * b < 0:
        return math.inf
    return (zq + math.sqrt(zq * zq - a * b)) / a


def percentile_label(q: float) -> str:
    """0.9 -> 'p90', 0.999 -> 'p99.9'."""
    return f"p{q * 100:g}"
