"""The requests of one comparison: arrival times, prompt and output lengths (pure).

Output lengths are lognormal, as the lab draws request lengths: median m and shape
sigma, length = round(m * exp(sigma * z)) with z standard normal, clipped to
[1, output_max]. The z, the prompt draws and the arrival gaps come from their own
seeded streams, so two workloads that differ only in sigma (or only in rate) have the
same requests with stretched lengths (or stretched times): common random numbers make
the sweep's differences the knob's, not the sample's. sigma 0 gives equal lengths.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Job:
    at: float  # simulated seconds from the start
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Workload:
    requests: int = 1000
    rate: float | None = None  # Poisson arrivals per second; None: all queued at t=0
    output_median: float = 128.0  # the h100 profile's own draw: median 128, sigma 0.8
    output_sigma: float = 0.8
    output_max: int = 2048
    prompt_median: float = 256.0
    prompt_sigma: float = 0.35
    prompt_max: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise ValueError("requests must be >= 1")
        if self.rate is not None and not self.rate > 0:
            raise ValueError("rate must be positive (or None: all at once)")
        if self.output_median < 1 or self.output_sigma < 0 or self.prompt_sigma < 0:
            raise ValueError("length parameters out of range")

    def jobs(self) -> list[Job]:
        gaps = random.Random(f"{self.seed}:arrivals")
        prompts = random.Random(f"{self.seed}:prompts")
        outputs = random.Random(f"{self.seed}:outputs")
        t = 0.0
        jobs: list[Job] = []
        for _ in range(self.requests):
            if self.rate is not None:
                t += gaps.expovariate(self.rate)
            prompt = round(self.prompt_median * math.exp(self.prompt_sigma * prompts.gauss()))
            output = round(self.output_median * math.exp(self.output_sigma * outputs.gauss()))
            jobs.append(
                Job(
                    at=t,
                    prompt_tokens=max(16, min(self.prompt_max, prompt)),
                    output_tokens=max(1, min(self.output_max, output)),
                )
            )
        return jobs

    def mean_output(self) -> float:
        return sum(j.output_tokens for j in self.jobs()) / self.requests
