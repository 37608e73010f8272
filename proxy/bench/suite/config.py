"""What one bench-suite run measures and how hard: levels, sizes, rounds, caps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SuiteConfig:
    levels: tuple[int, ...] = (1, 8, 32, 64)
    requests: int | None = None  # per level and endpoint; None: the sweep's max(32, 4 x level)
    max_tokens: int = 32
    profile: str = "h100-llama3-8b"
    speed: float = 1.0
    probes: int = 30  # non-streamed requests per probe and endpoint
    probe_tokens: int = 16
    idle_seconds: float = 1.0  # the proxy's CPU at rest is measured over this
    rounds: int = 5  # whole sweeps; the report gives the median over them
    max_time: float = 240.0  # cap on all sweeps; in-flight requests are cut when it hits
    repeats: int = 7
    micro_scale: float = 1.0  # multiplies the micro-benchmarks' operation counts

    def __post_init__(self) -> None:
        if not self.levels or min(self.levels) < 1 or len(set(self.levels)) != len(self.levels):
            raise ValueError("levels must be distinct positive whole numbers")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests must be at least 1")
        if min(self.max_tokens, self.probe_tokens, self.repeats, self.rounds) < 1:
            raise ValueError("max_tokens, probe_tokens, repeats and rounds must be >= 1")
        if self.probes < 0:
            raise ValueError("probes must not be negative")
        if not (self.speed > 0 and self.max_time > 0 and self.micro_scale > 0):
            raise ValueError("speed, max_time and micro_scale must be positive")
        if self.idle_seconds < 0:
            raise ValueError("idle_seconds must not be negative")
