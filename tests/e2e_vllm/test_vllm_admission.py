"""Against a real engine, the proxy's defaults (only the SLA set) hold the SLA past the
knee, and serve more requests within it than no proxy at the same load.

1. Warm-up: the first requests after start-up pay one-off costs (graph capture,
   allocator growth), so they are sent and thrown away.
2. Calibration, interleaved: closed-loop rounds at several concurrencies, the order
   reversed every round, so a slow phase of the machine spreads over every level
   instead of bending the curve; each level's P90 TPOT is the median over rounds.
   The target is the geometric mean of the P90 TPOT alone (1 client) and at the
   load (OVERLOAD clients): as far above the engine's latency floor as below what
   the load does to it, so that a drift of the machine's speed either way leaves it
   attainable and the load past its knee.
3. The load, OVERLOAD clients, is past the knee, so the limit has to bind. A cold
   proxy first settles under it; then short segments direct and through the proxy
   alternate in the order D P P D D P ..., so that a drift of the
   machine's speed over minutes (seen: 45 and 64 requests/s from the same direct load
   four minutes apart) falls on both sides alike instead of on whichever ran last.
4. Judged from the client's side over the segments: the admitted requests' P90 TPOT
   within 1.1 x the target, and as many requests per second within the target as
   direct, up to two standard errors of the paired (proxy - direct) differences of
   adjacent segments: the segments' own spread, not a tuned margin.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_vllm_cpu import ForeignCpu
from e2e_vllm_load import Sample, percentile, run_load
from e2e_vllm_process import proxy_process
from e2e_vllm_support import Endpoints, get_text, vllm_metric, wait_for

# The machine's speed drifts by up to 1.4x over minutes (seen). A target at the P90 of
# 16 clients left 32 clients barely past it in a fast phase (direct 1.15x the target,
# serving more within it than any limit), one at 8 clients sat on the engine's floor
# in a slow phase (the limit at 1 still 1.13x over it); the P90 at 32 was 2.2-3x the
# one at 1 over nine runs, so their geometric mean leaves about 1.5x either way.
OVERLOAD = 32
LEVELS = (1, 4, 8, 16, OVERLOAD)
ROUNDS = 2
LEVEL_SECONDS = 8.0
# The first moments of a closed-loop level are a burst of simultaneous prefills that
# inflates TPOT beyond the steady state; the level is measured after them.
RAMP_SECONDS = 2.0
SETTLE_SECONDS = 40.0  # the proxy starts cold at its default initial limit
SEGMENTS = 6  # per side, alternating D P P D D P ... (pairs in reversed order in turn)
SEGMENT_SECONDS = 12.0
ALLOWANCE = 1.1  # the goal for the client-side P90
STATUS_EVERY = 0.5


@dataclass
class Figures:
    """What the run measured; written to the logs folder for docs/real-vllm.md."""

    calibration: dict[str, list[float]] = field(default_factory=dict)  # level -> P90s
    target_tpot: float = 0.0
    direct: dict[str, float] = field(default_factory=dict)
    proxied: dict[str, float] = field(default_factory=dict)
    segments: list[tuple[str, float]] = field(default_factory=list)  # (side, good/s)
    limit_trace: list[tuple[float, int]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    foreign_cores: float = 0.0


def _ok(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.status == 200 and s.tpot is not None]


def _summary(samples: list[Sample], seconds: float, target: float) -> dict[str, float]:
    ok = _ok(samples)
    assert ok, "no successful request to measure"
    tpots = [s.tpot for s in ok if s.tpot is not None]
    return {
        "requests": len(ok),
        "req_per_s": round(len(ok) / seconds, 3),
        "good_per_s": round(sum(t <= target for t in tpots) / seconds, 3),
        "tpot_p50": percentile(tpots, 0.5),
        "tpot_p90": percentile(tpots, 0.9),
    }


async def _steady_p90(url: str, model: str, concurrency: int) -> float:
    started = time.monotonic()
    samples = await run_load(url, model, concurrency, duration=LEVEL_SECONDS)
    steady = [s.tpot for s in _ok(samples) if s.started - started >= RAMP_SECONDS]
    assert steady, f"no steady request at concurrency {concurrency}"
    return percentile([t for t in steady if t is not None], 0.9)


async def _calibrate(endpoints: Endpoints, figures: Figures) -> float:
    await run_load(endpoints.vllm, endpoints.model, 4, requests=12)  # warm-up
    for round_ in range(ROUNDS):
        order = LEVELS if round_ % 2 == 0 else tuple(reversed(LEVELS))
        for level in order:
            p90 = await _steady_p90(endpoints.vllm, endpoints.model, level)
            figures.calibration.setdefault(str(level), []).append(p90)
    medians = {int(k): statistics.median(v) for k, v in figures.calibration.items()}
    # A real engine's TPOT grows with its batch; if this one's did not, the check
    # would have no knee to find, which is a broken setup, not a pass.
    assert medians[OVERLOAD] >= 1.3 * medians[1], f"TPOT does not grow with load: {medians}"
    return round(math.sqrt(medians[1] * medians[OVERLOAD]), 4)


async def _status(admin: str) -> dict[str, Any] | None:
    code, text = await get_text(admin + "/status")
    if code != 200:
        return None
    body = json.loads(text)
    return body if isinstance(body, dict) else None


async def _segment(url: str, model: str) -> tuple[list[Sample], list[Sample]]:
    """One closed-loop segment at OVERLOAD: all its samples, and the steady ones."""
    started = time.monotonic()
    samples = await run_load(url, model, OVERLOAD, duration=SEGMENT_SECONDS)
    return samples, [s for s in samples if s.started - started >= RAMP_SECONDS]


async def _compare(endpoints: Endpoints, figures: Figures) -> None:
    target = figures.target_tpot
    options = ["--sla-tpot", str(target)]  # the defaults, only the SLA set
    log = endpoints.logs / "proxy-admission.log"
    steady: dict[str, list[Sample]] = {"direct": [], "proxy": []}
    async with proxy_process(endpoints.vllm, options, log) as proxy:
        started = time.monotonic()

        async def trace() -> None:
            while True:
                now = await _status(proxy.admin)
                if now is not None:
                    figures.limit_trace.append((round(time.monotonic() - started, 1), now["limit"]))
                await asyncio.sleep(STATUS_EVERY)

        tracer = asyncio.create_task(trace())
        try:
            answered = await run_load(proxy.url, endpoints.model, OVERLOAD, duration=SETTLE_SECONDS)
            for i in range(SEGMENTS):
                order = ("direct", "proxy") if i % 2 == 0 else ("proxy", "direct")
                for side in order:
                    url = endpoints.vllm if side == "direct" else proxy.url
                    samples, settled = await _segment(url, endpoints.model)
                    steady[side].extend(settled)
                    good = _summary(settled, SEGMENT_SECONDS - RAMP_SECONDS, target)["good_per_s"]
                    figures.segments.append((side, good))
                    if side == "proxy":
                        answered.extend(samples)
        finally:
            tracer.cancel()
    for sample in answered:
        figures.statuses[str(sample.status)] = figures.statuses.get(str(sample.status), 0) + 1
    seconds = SEGMENTS * (SEGMENT_SECONDS - RAMP_SECONDS)
    figures.direct = _summary(steady["direct"], seconds, target)
    figures.proxied = _summary(steady["proxy"], seconds, target)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.timeout(900)
async def test_defaults_hold_the_sla_past_the_knee_and_beat_no_proxy(
    endpoints: Endpoints,
) -> None:
    figures = Figures()
    meter = ForeignCpu(endpoints.driver_pid)
    meter.start()
    try:
        figures.target_tpot = await _calibrate(endpoints, figures)
        await _compare(endpoints, figures)

        async def idle() -> bool:
            return await vllm_metric(endpoints.vllm, "vllm:num_requests_running") == 0

        # A request the proxy left running upstream would have slowed what followed it.
        assert await wait_for(idle, within=30), "vLLM still running requests after the load"
    finally:
        figures.foreign_cores = round(meter.stop(), 2)
        _write(endpoints.logs / "admission.json", json.dumps(asdict(figures), indent=1))
        print(json.dumps({k: v for k, v in asdict(figures).items() if k != "limit_trace"}))

    assert set(figures.statuses) <= {"200", "429"}, f"unexpected answers {figures.statuses}"
    p90, target = figures.proxied["tpot_p90"], figures.target_tpot
    assert p90 <= ALLOWANCE * target, (
        f"admitted P90 TPOT {p90:.4f} s over {ALLOWANCE} x target {target:.4f} s; "
        f"limits {figures.limit_trace[-20:]}"
    )
    # Segments in the order D P P D D P ...: pair each proxy segment with the direct one
    # next to it in time.
    good = {side: [g for s, g in figures.segments if s == side] for side in ("direct", "proxy")}
    diffs = [p - d for p, d in zip(good["proxy"], good["direct"], strict=True)]
    margin = 2.0 * statistics.stdev(diffs) / math.sqrt(len(diffs))
    assert statistics.mean(diffs) >= -margin, (
        f"{figures.proxied['good_per_s']} req/s within the target through the proxy, "
        f"{figures.direct['good_per_s']} direct at the same load (segments {figures.segments})"
    )
