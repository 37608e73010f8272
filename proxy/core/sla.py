"""The SLA: a target per signal at one percentile, and the verdict on one request.

One rule for every judge (the control loop, the metrics, the scenarios, the load
benchmark): a request meets the SLA when every signal it has a value for is at or
below its target. A signal it has no value for is not judged: TTFT and TPOT of a
non-streamed answer, TPOT of a one-token answer (vLLM's `bench serve` counts that
TPOT as 0, which meets any target: the same verdict).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SIGNALS = ("ttft", "tpot", "e2e")


def within(values: Mapping[str, float | None], targets: Mapping[str, float]) -> bool:
    """Every targeted signal the request has a value for is at or below its target."""
    for signal, target in targets.items():
        value = values.get(signal)
        if value is not None and value > target:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Verdict:
    """Per targeted signal: met (True), missed (False) or not judged (None)."""

    signals: Mapping[str, bool | None]

    @property
    def met(self) -> bool:
        return all(v is not False for v in self.signals.values())


@dataclass(frozen=True, slots=True)
class Sla:
    targets: Mapping[str, float] = field(default_factory=dict)  # signal -> seconds
    percentile: float = 0.9

    def __post_init__(self) -> None:
        unknown = set(self.targets) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown signals {sorted(unknown)}; known: {SIGNALS}")
        if any(not t > 0 for t in self.targets.values()):
            raise ValueError("targets must be positive")
        if not 0 < self.percentile < 1:
            raise ValueError("percentile must be in (0, 1)")

    @property
    def miss_allowance(self) -> float:
        """The fraction of requests that may miss a target: 0.1 for a P90 SLA."""
        return 1.0 - self.percentile

    def verdict(self, values: Mapping[str, float | None]) -> Verdict:
        return Verdict(
            {
                signal: None if (value := values.get(signal)) is None else value <= target
                for signal, target in self.targets.items()
            }
        )

    def met(self, values: Mapping[str, float | None]) -> bool:
        return within(values, self.targets)
