"""One batching mode over one list of jobs, on the engine's own clock (pure, exact).

The driver is a discrete-event loop: requests join the engine at the first step
boundary after they arrive (as they would at a real engine), an idle engine jumps to
the next arrival, and a static engine between batches jumps to the next arrival or
its batch timeout, whichever is first. Nothing sleeps, so a run is a function of its
inputs.

GPU-slot utilisation: the batch has N slots (N = the static batch size, and
`max_num_seqs` for continuous batching, so both modes get the same slots). Over the
time the engine computes, it is the time-weighted fraction of those slots that hold a
sequence still prefilling or decoding. A static batch's slot whose sequence finished
early counts as idle until the batch ends; idle time between batches is not counted
(it shows in throughput and TTFT instead).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from proxy.bench.batching.workload import Job
from proxy.core.stats import percentile
from proxy.sim.batching import Batching, StaticBatching
from proxy.sim.engine import Engine, Sequence
from proxy.sim.profiles import Profile


@dataclass(frozen=True, slots=True)
class ModeResult:
    mode: str  # "continuous" or "static"
    requests: int
    output_tokens: int
    duration: float  # first arrival to last finish, simulated seconds
    busy: float  # simulated seconds the engine spent computing steps
    utilisation: float  # of the N slots, over `busy`
    ttft: tuple[float, ...]  # per request, seconds
    tpot: tuple[float, ...]  # per request with more than one output token
    e2e: tuple[float, ...]
    batches: int

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.duration if self.duration > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    def pct(self, signal: str, q: float) -> float:
        """The q-th percentile (q in percent) of `signal`; 0 with no values."""
        values: tuple[float, ...] = getattr(self, signal)
        return percentile(values, q / 100) or 0.0


def simulate(profile: Profile, batching: Batching, jobs: list[Job], slots: int) -> ModeResult:
    """Run every job to completion under `batching` with `slots` batch slots."""
    engine = Engine(replace(profile, max_num_seqs=slots), batching=batching)
    room = profile.max_model_len
    queue = deque(sorted(jobs, key=lambda j: j.at))
    seqs: list[Sequence] = []
    busy = slot_seconds = 0.0
    engine.now = queue[0].at if queue else 0.0
    while queue or engine.has_work:
        while queue and queue[0].at <= engine.now:
            job = queue.popleft()
            prompt = min(job.prompt_tokens, room - 1)
            output = min(job.output_tokens, room - prompt)
            seqs.append(engine.add(prompt, output, ignore_eos=True, arrival=job.at))
        if not engine.has_work:
            engine.now = queue[0].at
            continue
        step = engine.step()
        if not step.scheduled:  # static batching: the next batch is not due yet
            launch = engine.launch_at
            due = [t for t in (launch, queue[0].at if queue else None) if t is not None]
            engine.now = max(engine.now, min(due))
            continue
        busy += step.duration
        slot_seconds += step.scheduled * step.duration
    return _result(batching, seqs, busy, slot_seconds / (slots * busy) if busy else 0.0, engine)


def _result(
    batching: Batching, seqs: list[Sequence], busy: float, utilisation: float, engine: Engine
) -> ModeResult:
    start = min(s.arrival for s in seqs)
    end = max(s.finished_at or s.arrival for s in seqs)
    ttft, tpot, e2e = [], [], []
    for s in seqs:
        assert s.first_token_at is not None and s.finished_at is not None
        ttft.append(s.first_token_at - s.arrival)
        e2e.append(s.finished_at - s.arrival)
        if s.output_tokens > 1:
            tpot.append((s.finished_at - s.first_token_at) / (s.output_tokens - 1))
    return ModeResult(
        mode="static" if isinstance(batching, StaticBatching) else "continuous",
        requests=len(seqs),
        output_tokens=sum(s.output_tokens for s in seqs),
        duration=end - start,
        busy=busy,
        utilisation=utilisation,
        ttft=tuple(ttft),
        tpot=tuple(tpot),
        e2e=tuple(e2e),
        batches=engine.stats.batches,
    )
