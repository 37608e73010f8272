"""Closed-loop concurrency sweep of the engine on a virtual clock (seconds, not minutes).

Each of C clients sends a request, waits for its last token and sends the next one at
once, as `vllm bench serve --max-concurrency C` does. The clients' first requests are
spread evenly over one unloaded request's duration: with fixed lengths, clients that
start together stay in lock-step forever (all prefilling in one step, then all
decoding), which is an artefact of the benchmark, not a property of the engine. No
HTTP and no sleeping: the engine's own clock is the only time, so results are exact
for the model and reproducible for a seed.

    python -m proxy.sim.sweep --profile h100-llama3-8b --input-len 1024 --output-len 128
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence as Seq
from dataclasses import dataclass

from proxy.sim.engine import Engine, Sequence
from proxy.sim.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile

DEFAULT_LEVELS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True, slots=True)
class LevelResult:
    concurrency: int
    requests: int
    req_per_s: float
    output_tok_per_s: float
    ttft_p50: float
    ttft_p90: float
    tpot_p50: float
    tpot_p90: float
    e2e_p50: float
    mean_step: float  # seconds per engine step in the measured window
    preemptions: int


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_level(
    profile: Profile,
    concurrency: int,
    *,
    input_len: int,
    output_len: int,
    requests: int,
    seed: int = 0,
    ignore_eos: bool = True,
) -> LevelResult:
    """Measure the steady state: the first `concurrency` completions are warm-up."""
    engine = Engine(profile, seed=seed)
    roofline = profile.roofline
    period = roofline.prefill_time(input_len) + output_len * roofline.decode_step_time(
        1, input_len + output_len // 2
    )
    starts = [i * period / concurrency for i in range(concurrency)]
    sent = 0
    done: list[Sequence] = []
    total = requests + concurrency
    steps_at_start = 0
    window_start = 0.0
    steps = 0
    while len(done) < total:
        while starts and starts[0] <= engine.now:
            engine.add(input_len, output_len, ignore_eos=ignore_eos, arrival=starts.pop(0))
            sent += 1
        if not engine.has_work:
            engine.now = starts[0]
            continue
        result = engine.step()
        steps += 1
        for seq in result.emitted:
            if not seq.done:
                continue
            done.append(seq)
            if len(done) == concurrency:
                window_start, steps_at_start = engine.now, steps
            if sent < total:
                engine.add(input_len, output_len, ignore_eos=ignore_eos)
                sent += 1
    measured = done[concurrency:]
    elapsed = engine.now - window_start
    ttft = [s.first_token_at - s.arrival for s in measured if s.first_token_at is not None]
    tpot = [
        (s.last_token_at - s.first_token_at) / (s.output_tokens - 1)
        for s in measured
        if s.first_token_at is not None and s.output_tokens > 1
    ]
    e2e = [s.last_token_at - s.arrival for s in measured]
    tokens = sum(s.output_tokens for s in measured)
    return LevelResult(
        concurrency=concurrency,
        requests=len(measured),
        req_per_s=len(measured) / elapsed,
        output_tok_per_s=tokens / elapsed,
        ttft_p50=statistics.median(ttft),
        ttft_p90=_pct(ttft, 0.9),
        tpot_p50=statistics.median(tpot) if tpot else 0.0,
        tpot_p90=_pct(tpot, 0.9) if tpot else 0.0,
        e2e_p50=statistics.median(e2e),
        mean_step=elapsed / max(1, steps - steps_at_start),
        preemptions=engine.stats.preemptions,
    )


def sweep(
    profile: Profile,
    levels: Seq[int] = DEFAULT_LEVELS,
    *,
    input_len: int = 1024,
    output_len: int = 128,
    requests_per_client: int = 8,
    seed: int = 0,
) -> list[LevelResult]:
    return [
        run_level(
            profile,
            c,
            input_len=input_len,
            output_len=output_len,
            requests=max(64, requests_per_client * c),
            seed=seed,
        )
        for c in levels
    ]


def table(results: Seq[LevelResult]) -> str:
    lines = [
        "| concurrency | req/s | output tok/s | TTFT p50 ms | TTFT p90 ms | TPOT p50 ms "
        "| TPOT p90 ms | e2e p50 s | step ms | preemptions |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.concurrency} | {r.req_per_s:.2f} | {r.output_tok_per_s:,.0f} "
            f"| {r.ttft_p50 * 1e3:.1f} | {r.ttft_p90 * 1e3:.1f} | {r.tpot_p50 * 1e3:.2f} "
            f"| {r.tpot_p90 * 1e3:.2f} | {r.e2e_p50:.3f} | {r.mean_step * 1e3:.2f} "
            f"| {r.preemptions} |"
        )
    return "\n".join(lines)


def main(argv: Seq[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxy.sim.sweep", description=__doc__)
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument(
        "--levels", default=",".join(map(str, DEFAULT_LEVELS)), help="comma-separated"
    )
    parser.add_argument("--input-len", type=int, default=1024, help="prompt tokens")
    parser.add_argument("--output-len", type=int, default=128, help="output tokens (ignore_eos)")
    parser.add_argument("--requests-per-client", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        levels = [int(x) for x in args.levels.split(",") if x.strip()]
        if not levels or min(levels) < 1:
            raise ValueError("levels must be positive integers")
    except ValueError as exc:
        parser.error(str(exc))
    profile = get_profile(args.profile)
    results = sweep(
        profile,
        levels,
        input_len=args.input_len,
        output_len=args.output_len,
        requests_per_client=args.requests_per_client,
        seed=args.seed,
    )
    print(
        f"profile {profile.name}: {profile.model.name} on {profile.hardware.name}, "
        f"input {args.input_len} / output {args.output_len} tokens, "
        f"max_num_seqs {profile.max_num_seqs}, KV {profile.kv_capacity_tokens:,} tokens"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
