"""The generated scenario battery: cases across engines, SLAs, load shapes and length
mixes, each judged against its own oracle (`proxy.scenarios.judge`).

A case is a pure description. Its SLA is stated relative to its engine's own timing
(a decode step at batch 1, a prefill of the median prompt), so "tight" means the
same on an H100 and on a DGX Spark; its load is stated relative to the engine's
capacity at that SLA, which the judge measures for the case before running it. The
generator is seeded and covers every profile x SLA kind, cycling the load shapes
over them, so a fixed seed gives a fixed battery and another seed a new one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from proxy.load.arrivals import Load
from proxy.scenarios.harness import Fault
from proxy.sim.profiles import Profile, get_profile

PROFILES = ("h100-llama3-8b", "dgx-spark-llama3-8b", "cpu-tiny")
SLA_KINDS = ("ttft", "tpot", "e2e", "ttft+tpot")
# What each shape does to the offered load (x the capacity at the SLA) and the engine.
SHAPES = (
    "step",  # 0.5x for 30 s, then 2x
    "bursty",  # 4x for 15 s, 0.25x for 15 s, repeated
    "ramp",  # 0.3x rising in 10 s steps to 2.2x
    "loss",  # 2x; the engine slows 2.5x for good a third of the way in
    "swing",  # 2x; the engine slows 2x for two minutes, then recovers
    "mix-shift",  # 2x; the output median triples half way
    "cold",  # 2x from the first second (cold start)
    "under",  # 0.8x: below the knee, where the proxy must cost nothing
    "near",  # 1.1x: just past the knee
)
# Tightness menus: multiples of the engine's own batch-1 timing.
TPOT_TIGHTNESS = (1.6, 2.5, 4.0)  # x a decode step at batch 1
TTFT_TIGHTNESS = (4.0, 10.0, 25.0)  # x the prefill of the median prompt
E2E_TIGHTNESS = (2.0, 4.0, 8.0)  # x (prefill + mean output x a batch-1 step)
PROMPT_MEDIANS = (256, 512, 1024)
FIXED_OUTPUTS = (64, 128, 256)
LOGNORMAL_OUTPUTS = ((64, 0.6), (128, 1.0), (128, 0.6))


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    profile: str
    sla: dict[str, float] = field(hash=False)  # Settings fields: sla_ttft, sla_tpot, sla_e2e
    shape: str
    prompt_median: int
    output_tokens: int | None  # exact length, or None with output_median
    output_median: float | None
    output_sigma: float
    streamed: bool
    seed: int

    @property
    def engine(self) -> Profile:
        return get_profile(self.profile)

    @property
    def duration(self) -> float:
        """Long enough for the shape, and for a few dozen requests to finish within
        the longest target after the start (an E2E target of a minute needs minutes)."""
        base = {"swing": 300.0, "bursty": 180.0, "loss": 180.0, "cold": 90.0}.get(self.shape, 150.0)
        if self.shape == "swing":
            return base
        return max(base, 5.0 * max(self.sla.values()))

    @property
    def warmup(self) -> float:
        """Judged from here: the cold start is a case of its own."""
        return 0.0 if self.shape in ("cold", "swing") else 20.0

    def mean_output(self) -> float:
        if self.output_tokens is not None:
            return float(self.output_tokens)
        assert self.output_median is not None
        return self.output_median * math.exp(self.output_sigma**2 / 2)

    def max_tokens(self) -> int:
        return min(1024, self.engine.max_model_len - self.prompt_max() - 1)

    def prompt_max(self) -> int:
        return min(4 * self.prompt_median, self.engine.max_model_len // 2)

    def load(self, capacity: float, shaped: bool = True) -> Load:
        """The case's arrivals at `capacity` requests/s served within the SLA; with
        `shaped=False`, a plain 2x overload with the base length mix (calibration)."""
        shape = self.shape if shaped else "cold"
        c, d = capacity, self.duration if shaped else 40.0
        rates: tuple[tuple[float, float], ...]
        if shape == "step":
            rates = ((0.0, 0.5 * c), (30.0, 2.0 * c))
        elif shape == "bursty":
            rates = tuple(
                (t, (4.0 if (t // 15) % 2 == 0 else 0.25) * c) for t in range(0, int(d), 15)
            )
        elif shape == "ramp":
            steps = int(d // 10)
            rates = tuple((10.0 * i, c * (0.3 + 1.9 * i / max(1, steps - 1))) for i in range(steps))
        elif shape == "under":
            rates = ((0.0, 0.8 * c),)
        elif shape == "near":
            rates = ((0.0, 1.1 * c),)
        else:
            rates = ((0.0, 2.0 * c),)
        return Load(
            tuple((float(t), r) for t, r in rates),
            d,
            prompt_median=float(self.prompt_median),
            prompt_max=self.prompt_max(),
            output_tokens=self.output_tokens,
            max_tokens=self.max_tokens(),
            streamed=self.streamed,
            output_median=self.output_median,
            output_sigma=self.output_sigma,
            output_shift=((d / 2, 3.0),) if shaped and shape == "mix-shift" else (),
        )

    def faults(self) -> tuple[Fault, ...]:
        return _faults(self.shape, self.duration)

    def describe(self) -> str:
        sla = ", ".join(f"{k.removeprefix('sla_')} {v * 1000:.0f} ms" for k, v in self.sla.items())
        out = (
            f"{self.output_tokens} out"
            if self.output_tokens is not None
            else f"lognormal out ({self.output_median:g}, {self.output_sigma:g})"
        )
        mode = "streamed" if self.streamed else "whole answers"
        return f"{self.profile}, {sla}, {self.shape}, prompt {self.prompt_median}, {out}, {mode}"


def _faults(shape: str, duration: float) -> tuple[Fault, ...]:
    if shape == "loss":
        return (Fault(duration / 3, 2.5),)
    if shape == "swing":
        return (Fault(60.0, 2.0), Fault(180.0, 1.0))
    return ()


def baselines(profile: Profile, prompt: int, mean_output: float) -> tuple[float, float]:
    """(prefill of one median prompt, a decode step at batch 1 mid-answer), seconds."""
    roofline = profile.roofline
    return roofline.prefill_time(prompt), roofline.decode_step_time(
        1, int(prompt + mean_output / 2)
    )


def generate(seed: int, count: int) -> list[Case]:
    """`count` cases: every profile x SLA kind in turn, load shapes cycled over them,
    the rest (tightness, lengths, streaming, the run's seed) drawn from `seed`."""
    rng = random.Random(f"battery:{seed}")
    combos = [(p, k) for p in PROFILES for k in SLA_KINDS]
    cases = []
    for i in range(count):
        profile_name, kind = combos[i % len(combos)]
        shape = SHAPES[(i + i // len(combos)) % len(SHAPES)]
        profile = get_profile(profile_name)
        prompt = rng.choice(PROMPT_MEDIANS)
        if rng.random() < 0.5:
            fixed: int | None = rng.choice(FIXED_OUTPUTS)
            median, sigma = None, 0.0
        else:
            fixed = None
            median_i, sigma = rng.choice(LOGNORMAL_OUTPUTS)
            median = float(median_i)
        mean_output = float(fixed) if fixed is not None else median * math.exp(sigma**2 / 2)  # type: ignore[operator]
        prefill, step = baselines(profile, prompt, mean_output)
        # A case whose engine slows down states its targets against the slowed
        # engine, so that some limit can still meet them in every phase.
        slowdown = max([f.slowdown for f in _faults(shape, 300.0)] or [1.0])
        prefill, step = prefill * slowdown, step * slowdown
        sla: dict[str, float] = {}
        if "ttft" in kind:
            sla["sla_ttft"] = round(prefill * rng.choice(TTFT_TIGHTNESS), 4)
        if "tpot" in kind:
            sla["sla_tpot"] = round(step * rng.choice(TPOT_TIGHTNESS), 5)
        if kind == "e2e":
            sla["sla_e2e"] = round((prefill + mean_output * step) * rng.choice(E2E_TIGHTNESS), 3)
        streamed = kind != "e2e" or rng.random() < 0.5
        cases.append(
            Case(
                name=f"g{i:02d}-{profile_name.split('-')[0]}-{kind}-{shape}",
                profile=profile_name,
                sla=sla,
                shape=shape,
                prompt_median=prompt,
                output_tokens=fixed,
                output_median=median,
                output_sigma=sigma,
                streamed=streamed,
                seed=rng.randrange(1_000_000),
            )
        )
    return cases


def estimate(case: Case) -> tuple[int, float]:
    """A first guess of the knee (limit, requests/s within the SLA) from the roofline,
    to centre the measured calibration on: a steady batch of L sequences decoding
    while new prompts prefill, the largest L whose TPOT and E2E meet their targets
    and whose prefill work leaves the GPU a fifth of its time."""
    profile = case.engine
    prompt, out = case.prompt_median, case.mean_output()
    prefill, _ = baselines(profile, prompt, out)
    kv_fit = profile.kv_capacity_tokens // int(prompt + out)
    best = (1, 0.0)
    limit = 1
    while limit <= min(profile.max_num_seqs, kv_fit):
        step = profile.roofline.decode_step_time(limit, int(prompt + out / 2))
        rate = limit / (out * step)
        rate = rate / (1.0 + rate * prefill)  # prefill time is taken from decoding
        tpot = step / max(1e-6, 1.0 - rate * prefill)
        e2e = prefill + out * tpot
        ok = rate * prefill <= 0.8
        ok &= tpot <= case.sla.get("sla_tpot", math.inf)
        ok &= e2e <= case.sla.get("sla_e2e", math.inf)
        if ok and rate > best[1]:
            best = (limit, rate)
        limit = max(limit + 1, int(limit * 1.25))
    return best
