"""What a scenario run is judged by: goodput, percentiles, convergence, oscillation,
fairness. Pure functions over a `RunResult`.

Goodput is counted as `vllm bench serve --goodput` counts it, from the client's side:
a request is good when it finished and meets every target inclusively, its TTFT and
end-to-end time including the wait in the proxy's queue; TPOT is 0 for a one-token
answer. Percentiles are nearest-rank, the definition the proxy's own window uses,
so "P90 <= target" means "at least 90% of requests met the target".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from proxy.core.sla import within
from proxy.core.stats import percentile
from proxy.scenarios.harness import RequestRecord, RunResult, TickRecord


@dataclass(frozen=True, slots=True)
class Span:
    """Requests are attributed to the span their *arrival* falls in."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def holds(self, t: float) -> bool:
        return self.start <= t < self.end


def in_span(requests: Iterable[RequestRecord], span: Span) -> list[RequestRecord]:
    return [r for r in requests if span.holds(r.arrival)]


def signal_value(r: RequestRecord, signal: str, client: bool = True) -> float | None:
    """A finished request's value for `ttft`, `tpot` or `e2e`; `client` adds the queue."""
    if signal == "ttft":
        return r.client_ttft if client else r.ttft
    if signal == "e2e":
        return r.client_e2e if client else r.e2e
    if signal == "tpot":
        return r.tpot
    raise KeyError(signal)


def is_good(r: RequestRecord, targets: Mapping[str, float]) -> bool:
    """Finished, and within every target as its client saw it."""
    return r.finished and within({s: signal_value(r, s) for s in targets}, targets)


def goodput(requests: Iterable[RequestRecord], targets: Mapping[str, float], span: Span) -> float:
    """Good requests per second among those arriving in `span`."""
    return sum(is_good(r, targets) for r in in_span(requests, span)) / span.seconds


def throughput(requests: Iterable[RequestRecord], span: Span) -> float:
    return sum(r.finished for r in in_span(requests, span)) / span.seconds


def shed_ratio(requests: Iterable[RequestRecord], span: Span) -> float:
    chosen = in_span(requests, span)
    return sum(r.shed for r in chosen) / len(chosen) if chosen else 0.0


def signal_percentile(
    requests: Iterable[RequestRecord], signal: str, span: Span, *, client: bool = True
) -> float | None:
    """The P90 over the requests of `span` that finished (the admitted ones)."""
    values = [
        v
        for r in in_span(requests, span)
        if r.finished and (v := signal_value(r, signal, client)) is not None
    ]
    return percentile(values, 0.9)


def rolling_percentile(
    requests: Sequence[RequestRecord],
    signal: str,
    times: Sequence[float],
    span: float,
    *,
    client: bool = True,
) -> list[float | None]:
    """At each time t: P90 over the requests that *finished* in (t - span, t] (what a
    dashboard shows at t)."""
    done = sorted(
        (r.arrival + r.queued + r.e2e, v)
        for r in requests
        if r.e2e is not None and (v := signal_value(r, signal, client)) is not None
    )
    out: list[float | None] = []
    lo = hi = 0
    for t in times:
        while hi < len(done) and done[hi][0] <= t:
            hi += 1
        while lo < hi and done[lo][0] <= t - span:
            lo += 1
        out.append(percentile([v for _, v in done[lo:hi]], 0.9))
    return out


def limit_series(ticks: Iterable[TickRecord]) -> list[tuple[float, int]]:
    """(time, limit) summed over replicas at each decision time."""
    total: dict[float, int] = {}
    for tick in ticks:
        total[tick.t] = total.get(tick.t, 0) + tick.limit
    return sorted(total.items())


def first_within(
    series: Sequence[tuple[float, float]], target: float, tolerance: float, after: float = 0.0
) -> float | None:
    """Seconds after `after` until the series first comes within `tolerance` of `target`."""
    for t, value in series:
        if t >= after and abs(value - target) <= tolerance * target:
            return t - after
    return None


def settled_within(
    series: Sequence[tuple[float, float]],
    target: float,
    tolerance: float,
    after: float = 0.0,
    until: float | None = None,
) -> float | None:
    """Seconds after `after` from which the series stays within the band until `until`."""
    chosen = [(t, v) for t, v in series if t >= after and (until is None or t < until)]
    settled: float | None = None
    for t, value in chosen:
        if abs(value - target) <= tolerance * target:
            settled = t if settled is None else settled
        else:
            settled = None
    return None if settled is None else settled - after


def peak_to_peak(series: Sequence[tuple[float, float]], span: Span) -> tuple[float, float]:
    """(max - min) / mean over the span, and the mean."""
    values = [v for t, v in series if span.holds(t)]
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    return (max(values) - min(values)) / mean if mean else 0.0, mean


def mean_value(series: Sequence[tuple[float, float]], span: Span) -> float | None:
    values = [v for t, v in series if span.holds(t)]
    return sum(values) / len(values) if values else None


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    square_sum = sum(v * v for v in values)
    if not values or square_sum == 0:
        return 1.0
    return sum(values) ** 2 / (len(values) * square_sum)


def per_replica_throughput(result: RunResult, span: Span) -> list[float]:
    counts = [0] * result.config.replicas
    for r in in_span(result.requests, span):
        if r.finished:
            counts[r.replica] += 1
    return [c / span.seconds for c in counts]


__all__ = [
    "Span",
    "first_within",
    "goodput",
    "in_span",
    "is_good",
    "jain",
    "limit_series",
    "mean_value",
    "peak_to_peak",
    "per_replica_throughput",
    "rolling_percentile",
    "settled_within",
    "shed_ratio",
    "signal_percentile",
    "signal_value",
    "throughput",
]
