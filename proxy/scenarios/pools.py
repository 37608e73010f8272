"""The pool scenarios (issue 13): one proxy in front of several engines, judged from
the clients' side on virtual time with the server's own `Pool`.

- pool-heterogeneous: an H100 and a DGX Spark under twice their summed capacity; the
  pool's goodput against the sum of each engine's own oracle (best fixed limit, each
  at twice its own capacity).
- pool-member-dies: two H100s at their capacity; one dies mid-run. Errors only for the
  requests in flight on it, its traffic gone within one probe interval; when it is back,
  a probe readmits it at a low limit that grows on evidence.
- pool-member-added: one H100 at twice its capacity; a second appears in DNS mid-run
  and takes traffic within one resolve interval, and goodput rises with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from proxy.load.arrivals import Load
from proxy.scenarios.context import CAPACITY_AT_SLA, SLA, Check, Context, Report, summary
from proxy.scenarios.harness import PoolEngine, RequestRecord, RunConfig, RunResult
from proxy.scenarios.metrics import Span, goodput, in_span, mean_value, signal_percentile
from proxy.settings import Algorithm, Settings
from proxy.sim.profiles import Profile, get_profile

H100, SPARK = "h100-llama3-8b", "dgx-spark-llama3-8b"
# A DGX Spark decodes an 8B model at ~70 ms a step whatever the batch (273 GB/s for
# 16 GB of weights), so the classics' 25 ms TPOT is out of its reach: the mixed pool is
# held to an SLA both can meet, a relaxed chat target.
POOL_SLA: dict[str, Any] = {"sla_ttft": 1.0, "sla_tpot": 0.1}
# Goodput of each engine's best fixed limit at twice its capacity under POOL_SLA
# (measured: the oracle sweeps in the report's notes); the mixed pool is offered twice
# their sum.
POOL_CAPACITY = {H100: 60.0, SPARK: 3.0}
ORACLE_GRIDS = {H100: [192, 256, 384, 512, 640, 768, 1024], SPARK: [24, 32, 36, 40, 44, 48]}
SMOKE_GRIDS = {H100: [192, 384], SPARK: [32, 40]}


def _settings(ctx: Context, sla: Mapping[str, Any], **values: Any) -> Settings:
    return Settings(_env_file=None, **{**sla, **values, **ctx.overrides})


def _fixed(sla: Mapping[str, Any], limit: int) -> Settings:
    return Settings(
        _env_file=None,
        **sla,
        algorithm=Algorithm.FIXED,
        initial_limit=limit,
        max_limit=max(256, limit),
    )


def _step(ctx: Context, capacity: float) -> Load:
    """Half the capacity for 30 s, then twice it: the classics' step-overload."""
    return Load(((0.0, capacity / 2), (ctx.seconds(30), 2 * capacity)), ctx.seconds(240))


def _p90_checks(
    targets: Mapping[str, float], requests: list[RequestRecord], span: Span
) -> list[Check]:
    checks = []
    for signal, target in targets.items():
        value = signal_percentile(requests, signal, span)
        unit, scale = ("ms", 1000.0) if signal == "tpot" else ("s", 1.0)
        shown = "none finished" if value is None else f"{value * scale:.3g} {unit}"
        checks.append(
            Check(
                f"{signal} P90 (client) <= 1.1 x target {target * scale:g} {unit}",
                f"{shown} ({(value or 0) / target:.0%} of target)",
                value is not None and value <= 1.1 * target,
            )
        )
    return checks


def _member_limit(result: RunResult, index: int, span: Span) -> float | None:
    series = [(t.t, float(t.limit)) for t in result.ticks if t.replica == index]
    return mean_value(series, span)


def _setup(name: str, load: Load, span: Span, settings: Settings, engines: str) -> dict[str, Any]:
    return {
        "engines": engines,
        "SLA (P90)": ", ".join(f"{k} {v:g} s" for k, v in settings.sla_targets().items()),
        "load": "Poisson, "
        + ", ".join(f"{r:.1f} req/s from {t:g} s" for t, r in load.rates)
        + f", {load.duration:g} s; outputs {load.output_tokens} tokens (ignore_eos)",
        "proxy": f"{settings.algorithm.value}, initial {settings.initial_limit} per member, "
        f"queue {settings.queue_size}, probe every {settings.upstream_probe_interval:g} s, "
        f"eject after {settings.eject_threshold} connect failures"
        + (f", DNS every {settings.resolve_interval:g} s" if settings.resolve_interval > 0 else ""),
        "measured over": f"arrivals {span.start:g}-{span.end:g} s",
        "scenario": name,
    }


def heterogeneous(ctx: Context) -> Report:
    engines = [get_profile(H100), get_profile(SPARK)]
    grids = ORACLE_GRIDS if ctx.scale >= 1 else SMOKE_GRIDS
    span = Span(ctx.seconds(120), ctx.seconds(240))
    targets = Settings(_env_file=None, **POOL_SLA).sla_targets()
    oracle_configs: list[tuple[Profile, int, RunConfig]] = [
        (p, n, RunConfig(p, _step(ctx, POOL_CAPACITY[p.name]), _fixed(POOL_SLA, n), seed=ctx.seed))
        for p in engines
        for n in grids[p.name]
    ]
    total = sum(POOL_CAPACITY[p.name] for p in engines)
    load = _step(ctx, total)
    settings = _settings(ctx, POOL_SLA)
    pool_config = RunConfig(
        engines[0], load, settings, seed=ctx.seed, pool=tuple(PoolEngine(p) for p in engines)
    )
    *oracle_runs, pooled = ctx.run_many([c for _, _, c in oracle_configs] + [pool_config])
    sweeps: dict[str, list[tuple[int, float]]] = {}
    for (profile, n, _), run in zip(oracle_configs, oracle_runs, strict=True):
        sweeps.setdefault(profile.name, []).append((n, goodput(run.requests, targets, span)))
    best = {name: max(points, key=lambda p: p[1]) for name, points in sweeps.items()}
    oracle_sum = sum(g for _, g in best.values())
    good = goodput(pooled.requests, targets, span)
    report = Report(
        "pool-heterogeneous",
        "an H100 and a DGX Spark behind one proxy at twice their summed capacity",
        _setup("pool-heterogeneous", load, span, settings, f"{H100} + {SPARK} (one member each)"),
        rows=[summary("pool (adaptive, one limit per member)", pooled, span)],
    )
    report.checks = _p90_checks(targets, pooled.requests, span)
    report.checks.append(
        Check(
            "goodput >= 0.9 x the sum of each engine's own oracle",
            f"{good:.2f} vs {oracle_sum:.2f} req/s ({good / oracle_sum:.0%}; "
            + ", ".join(f"{name} fixed {n}: {g:.2f}" for name, (n, g) in best.items())
            + ")",
            good >= 0.9 * oracle_sum,
        )
    )
    chosen = in_span(pooled.requests, span)
    for index, profile in enumerate(engines):
        mine = [r for r in chosen if r.finished and r.engine == index]
        limit = _member_limit(pooled, index, span)
        own = goodput([r for r in pooled.requests if r.engine == index], targets, span)
        report.notes.append(
            f"{profile.name}: mean limit {limit or 0:.1f} (its oracle {best[profile.name][0]}), "
            f"served {len(mine) / span.seconds:.2f} req/s, goodput {own:.2f} req/s "
            f"(its oracle alone {best[profile.name][1]:.2f})."
        )
    for name, points in sweeps.items():
        report.notes.append(
            f"Oracle sweep {name} at {2 * POOL_CAPACITY[name]:g} req/s (fixed limit: goodput): "
            + ", ".join(f"{n}: {g:.2f}" for n, g in points)
        )
    return report


def member_dies(ctx: Context) -> Report:
    profile = get_profile(H100)
    capacity = CAPACITY_AT_SLA[H100]
    death, back, end = ctx.seconds(90), ctx.seconds(120), ctx.seconds(180)
    # The pool's capacity: the survivor alone is at twice its own, and the member that
    # comes back is needed (its controller only grows while its limit is in use).
    load = Load(((0.0, 2 * capacity),), end)
    settings = _settings(ctx, SLA)
    config = RunConfig(
        profile,
        load,
        settings,
        seed=ctx.seed,
        pool=(PoolEngine(profile), PoolEngine(profile, dies=death, returns=back)),
    )
    (result,) = ctx.run_many([config])
    targets = settings.sla_targets()
    requests = result.requests
    failed = [r for r in requests if r.failed]
    on_it = [r for r in failed if r.engine == 1 and r.sent is not None and r.sent < death]
    beyond = len(failed) - len(on_it)
    late = [t for t, index in result.dispatches if index == 1 and death <= t < back]
    moved = (max(late) - death) if late else 0.0
    probe = settings.upstream_probe_interval
    after = Span(death + ctx.seconds(10), back)
    again = Span(back + ctx.seconds(30), end)
    report = Report(
        "pool-member-dies",
        f"two H100s at their capacity; one dies at {death:g} s and is back at {back:g} s",
        _setup("pool-member-dies", load, after, settings, f"2 x {H100}"),
        rows=[
            summary(f"before the death (30-{death:g} s)", result, Span(ctx.seconds(30), death)),
            summary(f"one left ({after.start:g}-{after.end:g} s)", result, after),
            summary(f"both again ({again.start:g}-{again.end:g} s)", result, again),
        ],
    )
    report.checks.append(
        Check(
            "no errors beyond the requests in flight on the member that died",
            f"{len(failed)} errors, {len(on_it)} of them in flight on it at its death",
            beyond == 0,
        )
    )
    report.checks.append(
        Check(
            f"its traffic moves to the other within one probe interval ({probe:g} s)",
            f"last request sent its way {moved * 1000:.0f} ms after the death",
            moved <= probe,
        )
    )
    good = goodput(requests, targets, after)
    report.checks.append(
        Check(
            "the survivor serves the load at its capacity (goodput >= 0.8 x capacity)",
            f"{good:.1f} req/s (capacity {capacity:g})",
            good >= 0.8 * capacity,
        )
    )
    report.checks += _p90_checks(targets, requests, after)
    readmitted = [(t, limit) for t, index, limit in result.readmissions if index == 1]
    wait = settings.upstream_probe_interval
    report.checks.append(
        Check(
            f"back in rotation within a probe interval of its return, at a low limit "
            f"(<= initial {settings.initial_limit})",
            "never"
            if not readmitted
            else f"{readmitted[0][0] - back:.2f} s after, at limit {readmitted[0][1]}",
            bool(readmitted)
            and readmitted[0][0] - back <= wait
            and readmitted[0][1] <= settings.initial_limit,
        )
    )
    share = [r for r in in_span(requests, again) if r.finished]
    mine = sum(1 for r in share if r.engine == 1) / max(1, len(share))
    grown = _member_limit(result, 1, again) or 0.0
    report.checks.append(
        Check(
            "its limit grows on evidence and it takes its share again (>= 35%)",
            f"mean limit {grown:.0f} from 30 s after its return, {mine:.0%} of the requests",
            grown > 2 * settings.initial_limit and mine >= 0.35,
        )
    )
    report.checks += _p90_checks(targets, requests, again)
    report.notes.append(
        "Ejections (time, reason): "
        + (", ".join(f"{t:.2f} s {reason}" for t, _, reason in result.ejections) or "none")
    )
    return report


def member_added(ctx: Context) -> Report:
    profile = get_profile(H100)
    capacity = CAPACITY_AT_SLA[H100]
    # Off the look-up times (every 5 s from 0), so the wait for the next one shows.
    join, end = ctx.seconds(90) + 2.5, ctx.seconds(240)
    load = Load(((0.0, 2 * capacity),), end)
    settings = _settings(ctx, SLA, resolve_interval=5.0)
    config = RunConfig(
        profile,
        load,
        settings,
        seed=ctx.seed,
        pool=(PoolEngine(profile), PoolEngine(profile, joins=join)),
    )
    (result,) = ctx.run_many([config])
    targets = settings.sla_targets()
    before, after = Span(ctx.seconds(30), join), Span(join + ctx.seconds(30), end)
    first = min((t for t, index in result.dispatches if index == 1), default=None)
    took = None if first is None else first - join
    report = Report(
        "pool-member-added",
        f"one H100 at twice its capacity; DNS returns a second from {join:g} s",
        _setup("pool-member-added", load, after, settings, f"{H100}, a second one from {join:g} s"),
        rows=[
            summary(f"one member ({before.start:g}-{before.end:g} s)", result, before),
            summary(f"two members ({after.start:g}-{after.end:g} s)", result, after),
        ],
    )
    interval = settings.resolve_interval
    report.checks.append(
        Check(
            f"the new member takes traffic within one resolve interval ({interval:g} s)",
            "never" if took is None else f"first request {took:.2f} s after it appeared",
            took is not None and took <= interval,
        )
    )
    g1, g2 = goodput(result.requests, targets, before), goodput(result.requests, targets, after)
    report.checks.append(
        Check(
            "goodput rises accordingly (>= 1.8x with the second member)",
            f"{g1:.1f} -> {g2:.1f} req/s ({g2 / g1 if g1 else 0:.2f}x)",
            g2 >= 1.8 * g1,
        )
    )
    report.checks += _p90_checks(targets, result.requests, after)
    limit = _member_limit(result, 1, after)
    report.notes.append(f"Mean limit of the new member after 30 s: {limit or 0:.1f}.")
    return report


SCENARIOS: dict[str, Callable[[Context], Report]] = {
    "pool-heterogeneous": heterogeneous,
    "pool-member-dies": member_dies,
    "pool-member-added": member_added,
}

__all__ = ["POOL_CAPACITY", "POOL_SLA", "SCENARIOS"]
