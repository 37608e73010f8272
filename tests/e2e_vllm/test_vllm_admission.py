"""Against a real engine, the AIMD limit finds the knee and the admitted requests meet the SLA.

First vLLM's own TPOT is measured directly at concurrency 1 and 32, in this run, on
this machine; the target is put halfway between the two P90s. A proxy of
the check's own, with that target, then takes a bounded closed-loop load at
concurrency 32: its limit must come down from 32 and stay below it, and the
requests it admitted in the settled part of the run must meet the target.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_vllm_cpu import ForeignCpu
from e2e_vllm_load import Sample, percentile, run_load
from e2e_vllm_process import proxy_process
from e2e_vllm_support import Endpoints, get_text, vllm_metric, wait_for

CONCURRENCY = 32
LOAD_SECONDS = 90.0
# P90 of fewer samples at concurrency 1 is at the mercy of one or two slow requests.
DIRECT_ONE_REQUESTS = 24
# Direct measurement at 32: the first seconds are a burst of 32 simultaneous prefills
# that inflates TPOT far beyond the steady state the proxy later sees; leave them out.
DIRECT_SECONDS = 15.0
DIRECT_RAMP = 4.0
# The last part of the run counts as settled; before it the limit may first probe
# above 32 (up to --max-limit) and then come down.
SETTLED_FRACTION = 1 / 3
# Halfway: lower puts the target within the noise of vLLM at low concurrency (other
# work on the 2 cores can push it there), higher puts the knee too close to 32.
TARGET_POSITION = 1 / 2
# Allowance over the target for the admitted P90. AIMD holds the P90 *around* the
# target (it probes above before it backs off) and the client's clock includes the
# relay and its own CPU share: passing runs measured +5% to +19%. Eager-mode decoding
# on 2 cores adds run-to-run noise on top.
NOISE = 0.3
STATUS_EVERY = 0.5
# Mean cores taken by programs outside this run above which a miss is inconclusive:
# vLLM alone keeps both cores busy, so even a quarter core elsewhere shifts its speed.
FOREIGN_CORES_MAX = 0.25
PROXY_OPTIONS = [
    "--initial-limit", str(CONCURRENCY),
    "--max-limit", str(2 * CONCURRENCY),
    "--control-interval", "0.5",
    "--window-min-samples", "10",
    "--window-seconds", "10",
]  # fmt: skip


@dataclass
class Figures:
    """What the run measured; written to the logs folder for the README's table."""

    direct_c1: dict[str, float] = field(default_factory=dict)
    direct_c32: dict[str, float] = field(default_factory=dict)
    target_tpot: float = 0.0
    limit_trace: list[tuple[float, int]] = field(default_factory=list)
    settled_limit: dict[str, float] = field(default_factory=dict)
    admitted: dict[str, float] = field(default_factory=dict)
    proxy_status_tpot_p90: float | None = None
    # Measured again after the load: tells noise on the machine from a proxy fault.
    direct_c1_after: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    foreign_cores: float = 0.0


def _summary(samples: list[Sample], seconds: float) -> dict[str, float]:
    ok = [s for s in samples if s.status == 200 and s.tpot is not None and s.ttft is not None]
    assert ok, "no successful request to measure"
    tpots = [s.tpot for s in ok if s.tpot is not None]
    ttfts = [s.ttft for s in ok if s.ttft is not None]
    return {
        "requests": len(ok),
        "req_per_s": round(len(ok) / seconds, 2),
        "tpot_p50": percentile(tpots, 0.5),
        "tpot_p90": percentile(tpots, 0.9),
        "ttft_p50": percentile(ttfts, 0.5),
        "ttft_p90": percentile(ttfts, 0.9),
    }


async def _status(admin: str) -> dict[str, Any] | None:
    code, text = await get_text(admin + "/status")
    if code != 200:
        return None
    body = json.loads(text)
    return body if isinstance(body, dict) else None


async def _measure_one(url: str, model: str, requests: int) -> dict[str, float]:
    started = time.monotonic()
    samples = await run_load(url, model, 1, requests=requests)
    return _summary(samples, time.monotonic() - started)


async def _measure_steady(url: str, model: str, concurrency: int) -> dict[str, float]:
    started = time.monotonic()
    samples = await run_load(url, model, concurrency, duration=DIRECT_SECONDS)
    steady = [s for s in samples if s.started - started >= DIRECT_RAMP]
    return _summary(steady, time.monotonic() - started - DIRECT_RAMP)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def _run(endpoints: Endpoints, figures: Figures) -> tuple[list[Sample], float]:
    """Measure vLLM directly, then load the proxy; returns the load's samples and start."""
    # Warm-up first: the first requests after start-up pay one-off costs.
    await run_load(endpoints.vllm, endpoints.model, 4, requests=8)
    figures.direct_c1 = await _measure_one(endpoints.vllm, endpoints.model, DIRECT_ONE_REQUESTS)
    figures.direct_c32 = await _measure_steady(endpoints.vllm, endpoints.model, CONCURRENCY)
    low, high = figures.direct_c1["tpot_p90"], figures.direct_c32["tpot_p90"]
    if high < 1.3 * low:
        pytest.skip(
            f"inconclusive: vLLM's P90 TPOT barely grows with concurrency here "
            f"({low:.4f} s at 1, {high:.4f} s at {CONCURRENCY})"
        )
    figures.target_tpot = round(low + TARGET_POSITION * (high - low), 4)

    options = ["--sla-tpot", str(figures.target_tpot), *PROXY_OPTIONS]
    log = endpoints.logs / "proxy-admission.log"
    async with proxy_process(endpoints.vllm, options, log) as proxy:
        started = time.monotonic()
        load = asyncio.create_task(
            run_load(proxy.url, endpoints.model, CONCURRENCY, duration=LOAD_SECONDS)
        )
        while not load.done():
            now = await _status(proxy.admin)
            if now is not None:
                figures.limit_trace.append((round(time.monotonic() - started, 1), now["limit"]))
                figures.proxy_status_tpot_p90 = now.get("signals", {}).get("tpot", {}).get("p90")
            await asyncio.wait({load}, timeout=STATUS_EVERY)

    async def idle() -> bool:
        return await vllm_metric(endpoints.vllm, "vllm:num_requests_running") == 0

    # A request the proxy left running upstream would also slow the measurement below.
    assert await wait_for(idle, within=30), "vLLM still running requests after the load"
    figures.direct_c1_after = await _measure_one(
        endpoints.vllm, endpoints.model, DIRECT_ONE_REQUESTS
    )
    return load.result(), started


def _settle(
    figures: Figures, samples: list[Sample], started: float
) -> tuple[list[int], list[Sample]]:
    """The limits read and the requests admitted in the settled part of the run."""
    settled_from = LOAD_SECONDS * (1 - SETTLED_FRACTION)
    settled = [limit for at, limit in figures.limit_trace if at >= settled_from]
    admitted = [s for s in samples if s.status == 200 and s.started - started >= settled_from]
    for sample in samples:
        figures.statuses[str(sample.status)] = figures.statuses.get(str(sample.status), 0) + 1
    if settled:
        figures.settled_limit = {"min": min(settled), "max": max(settled), "last": settled[-1]}
    if admitted:
        figures.admitted = _summary(admitted, LOAD_SECONDS * SETTLED_FRACTION)
    return settled, admitted


@pytest.mark.timeout(420)
async def test_limit_settles_below_32_and_admitted_tpot_meets_target(
    endpoints: Endpoints,
) -> None:
    status = await _status(endpoints.admin)
    if status is None or "limit" not in status:
        pytest.skip("the proxy's /status has no `limit` yet: admission control is not wired")

    figures = Figures()
    meter = ForeignCpu(endpoints.driver_pid)
    meter.start()
    try:
        samples, started = await _run(endpoints, figures)
        settled, admitted = _settle(figures, samples, started)
    finally:
        figures.foreign_cores = round(meter.stop(), 2)
        _write(endpoints.logs / "admission.json", json.dumps(asdict(figures), indent=1))
        print(json.dumps({k: v for k, v in asdict(figures).items() if k != "limit_trace"}))

    assert set(figures.statuses) <= {"200", "429"}, f"unexpected answers {figures.statuses}"
    assert settled, "no /status reading in the settled part of the run"
    assert admitted, "no request admitted in the settled part of the run"
    misses = []
    if max(settled) >= CONCURRENCY:
        misses.append(f"limit did not settle below {CONCURRENCY}: {settled}")
    bound = figures.target_tpot * (1 + NOISE)
    if figures.admitted["tpot_p90"] > bound:
        misses.append(
            f"admitted P90 TPOT {figures.admitted['tpot_p90']:.4f} s over target "
            f"{figures.target_tpot} s (+{NOISE:.0%} noise allowance); settled limits {settled}"
        )
    low_before, low_after = figures.direct_c1["tpot_p90"], figures.direct_c1_after["tpot_p90"]
    context = (
        f"vLLM alone at concurrency 1: P90 TPOT {low_before:.4f} s before, {low_after:.4f} s "
        f"after; other programs took {figures.foreign_cores} cores on average"
    )
    if misses and (
        figures.foreign_cores > FOREIGN_CORES_MAX or low_after >= figures.target_tpot / (1 + NOISE)
    ):
        # vLLM's own speed changed under the controller, so the run says nothing either way.
        pytest.skip(f"inconclusive, the machine was busy: {'; '.join(misses)}; {context}")
    assert not misses, f"{'; '.join(misses)}; {context}"
