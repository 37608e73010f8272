"""Per-level statistics and goodput, counted the way `vllm bench serve --goodput` counts.

vLLM (benchmarks/serve.py, `calculate_metrics`): over the successful requests only,
a request is good when it meets *every* given SLO, inclusively (`slo >= value`);
TPOT is (e2e - ttft) / (output_tokens - 1) and is taken as 0 for a request with at
most one output token; goodput = good requests / benchmark duration. vLLM takes the
SLO values in milliseconds (`--goodput ttft:500 tpot:50 e2el:5000`); here they are
seconds, or milliseconds with an `ms` suffix. Percentiles are nearest-rank
(`proxy.core.stats`), the definition the proxy's own window uses; vLLM interpolates
linearly, which differs by less than one sample's gap.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from proxy.core.sla import within
from proxy.core.stats import percentile_sorted
from proxy.load.client import RequestResult

_SLO_NAMES = {"ttft": "ttft", "tpot": "tpot", "e2e": "e2e", "e2el": "e2e"}


@dataclass(frozen=True, slots=True)
class Slo:
    """Per-request limits in seconds; None: not part of the goodput test."""

    ttft: float | None = None
    tpot: float | None = None
    e2e: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.ttft, self.tpot, self.e2e))

    def targets(self) -> dict[str, float]:
        given = {"ttft": self.ttft, "tpot": self.tpot, "e2e": self.e2e}
        return {signal: value for signal, value in given.items() if value is not None}

    @classmethod
    def parse(cls, spec: str | None) -> Slo:
        """'ttft=200ms,tpot=0.05,e2e=5' (seconds unless suffixed ms or s)."""
        if not spec:
            return cls()
        values: dict[str, float] = {}
        for item in spec.split(","):
            name, sep, raw = item.partition("=")
            key = _SLO_NAMES.get(name.strip().lower())
            if not sep or key is None:
                raise ValueError(f"bad SLO {item!r}; use ttft=..., tpot=..., e2e=...")
            values[key] = _seconds(raw.strip())
        return cls(**values)

    def describe(self) -> str:
        parts = [
            f"{name}<={value * 1000:g}ms"
            for name, value in (("ttft", self.ttft), ("tpot", self.tpot), ("e2e", self.e2e))
            if value is not None
        ]
        return " and ".join(parts) or "none"


def _seconds(raw: str) -> float:
    scale = 1.0
    if raw.endswith("ms"):
        raw, scale = raw[:-2], 0.001
    elif raw.endswith("s"):
        raw = raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        raise ValueError(f"bad duration {raw!r}") from None
    if not value > 0 or math.isinf(value):
        raise ValueError(f"SLO must be a positive duration, got {raw!r}")
    return value


def is_good(result: RequestResult, slo: Slo) -> bool:
    """vLLM's test: succeeded and within every given SLO (inclusive); the verdict is
    `proxy.core.sla`'s, so a one-token answer's TPOT is not judged (vLLM counts it as
    0, which meets any target)."""
    values = {"ttft": result.ttft, "tpot": result.tpot, "e2e": result.e2e}
    return result.ok and within(values, slo.targets())


@dataclass(frozen=True, slots=True)
class Dist:
    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Dist | None:
        if not values:
            return None
        ordered = sorted(values)
        return cls(
            sum(values) / len(values),
            percentile_sorted(ordered, 0.5),
            percentile_sorted(ordered, 0.9),
            percentile_sorted(ordered, 0.99),
        )


@dataclass(frozen=True, slots=True)
class LevelStats:
    endpoint: str
    mode: str  # "concurrency" or "rate"
    level: float  # concurrency, or offered requests per second
    requests: int  # finished (ok + failed); requests cut by the time cap are `cancelled`
    ok: int
    failed: int
    failures: dict[str, int]  # HTTP status or error kind -> count
    duration: float  # first send to last finish, seconds
    req_per_s: float  # successful requests per second
    output_tok_per_s: float
    good: int
    goodput: float | None  # good requests per second; None without an SLO
    e2e: Dist | None
    ttft: Dist | None
    tpot: Dist | None
    itl: Dist | None
    cancelled: int = 0


def summarize(
    endpoint: str,
    mode: str,
    level: float,
    results: Iterable[RequestResult],
    duration: float,
    slo: Slo,
    cancelled: int = 0,
) -> LevelStats:
    results = list(results)
    ok = [r for r in results if r.ok]
    failures = Counter(r.failure_key for r in results if not r.ok)
    good = sum(1 for r in ok if is_good(r, slo))
    per_s = 1 / duration if duration > 0 else 0.0
    return LevelStats(
        endpoint=endpoint,
        mode=mode,
        level=level,
        requests=len(results),
        ok=len(ok),
        failed=len(results) - len(ok),
        failures=dict(sorted(failures.items())),
        duration=duration,
        req_per_s=len(ok) * per_s,
        output_tok_per_s=sum(r.output_tokens for r in ok) * per_s,
        good=good,
        goodput=good * per_s if slo else None,
        e2e=Dist.of([r.e2e for r in ok]),
        ttft=Dist.of([r.ttft for r in ok if r.ttft is not None]),
        tpot=Dist.of([t for r in ok if (t := r.tpot) is not None]),
        itl=Dist.of([gap for r in ok for gap in r.itl]),
        cancelled=cancelled,
    )
