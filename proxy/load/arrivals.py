"""Open-loop load for the scenarios: Poisson arrivals at a piecewise-constant rate.

Open loop (arrivals do not wait for answers) is what overload looks like in
production: users keep coming however slow the server is. Every random stream
(arrival gaps, prompt lengths, replica choice) has its own seeded generator, so
changing one knob never reshuffles the others.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # seconds from the start of the run
    prompt_tokens: int
    replica: int
    output_tokens: int | None = None  # None: the engine draws the length


@dataclass(frozen=True, slots=True)
class Load:
    """`rates`: (from second, arrivals per second) steps, the first at 0."""

    rates: tuple[tuple[float, float], ...]
    duration: float
    prompt_median: float = 512.0
    prompt_sigma: float = 0.35
    prompt_max: int = 2048
    # Exact output length (ignore_eos, as `vllm bench serve` runs); None: the engine
    # draws a lognormal length itself (its profile's median), capped at `max_tokens`.
    output_tokens: int | None = 128
    max_tokens: int = 2048
    streamed: bool = True  # False: whole answers, judged on E2E (their TTFT is their E2E)
    # Lognormal output lengths drawn here, per arrival (exact, ignore_eos), instead of
    # by the engine: `output_median` tokens, sigma `output_sigma`, the median scaled by
    # the factor in force at the arrival (`output_shift`: (from second, factor) steps).
    output_median: float | None = None
    output_sigma: float = 0.8
    output_shift: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.rates or self.rates[0][0] != 0.0:
            raise ValueError("rates must start at second 0")
        starts = [start for start, _ in self.rates]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError("rate steps must be in increasing time order")
        if any(rate < 0 for _, rate in self.rates) or self.duration <= 0:
            raise ValueError("rates must be >= 0 and duration > 0")
        if self.output_tokens is not None and self.output_tokens < 1:
            raise ValueError("output_tokens must be >= 1")
        if self.output_median is not None and (self.output_median < 1 or self.output_sigma < 0):
            raise ValueError("output_median must be >= 1 and output_sigma >= 0")

    def rate_at(self, t: float) -> float:
        rate = self.rates[0][1]
        for start, value in self.rates:
            if start > t:
                break
            rate = value
        return rate

    def segment_end(self, t: float) -> float:
        """When the rate in force at `t` next changes (or the load ends)."""
        return min([start for start, _ in self.rates if start > t] + [self.duration])

    def arrivals(self, seed: int, replicas: int = 1) -> Iterator[Arrival]:
        """The whole arrival sequence, a pure function of the seed."""
        gaps = random.Random(f"{seed}:arrivals")
        prompts = random.Random(f"{seed}:prompts")
        split = random.Random(f"{seed}:replicas")
        outputs = random.Random(f"{seed}:outputs")
        log_median = math.log(self.prompt_median)
        t = 0.0
        while t < self.duration:
            rate, end = self.rate_at(t), self.segment_end(t)
            gap = gaps.expovariate(rate) if rate > 0 else math.inf
            if t + gap >= end:
                t = end  # Poisson is memoryless: start afresh at the rate change
                continue
            t += gap
            tokens = round(prompts.lognormvariate(log_median, self.prompt_sigma))
            yield Arrival(
                at=t,
                prompt_tokens=max(16, min(self.prompt_max, tokens)),
                replica=split.randrange(replicas) if replicas > 1 else 0,
                output_tokens=self._output(outputs, t),
            )

    def _output(self, rng: random.Random, t: float) -> int | None:
        if self.output_median is None:
            return self.output_tokens
        factor = 1.0
        for start, value in self.output_shift:
            if start <= t:
                factor = value
        drawn = rng.lognormvariate(math.log(self.output_median * factor), self.output_sigma)
        return max(1, min(self.max_tokens, round(drawn)))


__all__ = ["Arrival", "Load"]
