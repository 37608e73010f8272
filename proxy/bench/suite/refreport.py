"""The reference sections as Markdown (printed, and written to reference.md), with
the issues' goals next to what was measured; and as reference.json."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from proxy.bench.suite.reference import TARGETS
from proxy.bench.suite.refgoals import goals

if TYPE_CHECKING:
    from pathlib import Path

    from proxy.bench.suite.refrun import RefResult

MIB = 2**20
_QUEUED_HEADER = ["queued", "RSS idle MiB", "RSS queued MiB", "peak MiB"]
_QUEUED_HEADER += ["KiB per queued request", "filled in s", "proxy CPU s meanwhile"]
_QUEUED_HEADER += ["refused", "emptied in s"]


def _rate(value: float) -> str:
    return f"{value / 1000:.2f}k" if value >= 1000 else f"{value:.0f}"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def _reference(result: RefResult) -> list[str]:
    config, rows = result.config, result.rows
    if not rows:
        return []
    cpus = result.cpus
    pinning = (
        f"servers on CPU {cpus[0]}, wrk on CPU {cpus[1]}" if cpus[0] is not None else "no pinning"
    )
    lines = [
        "## Against reference proxies (wrk, nginx; issue 12)",
        "",
        f"{', '.join(result.versions.values()) or 'nginx, wrk'}; {pinning}. {config.rounds} "
        f"rounds of {config.seconds} s per path, kind and level, interleaved, the order of "
        "the paths alternating per round; cells: median (min-max over rounds); ratios "
        "per round, then the median. Upstream: nginx serving a 565-byte chat completion or "
        "a 52-event SSE answer (with usage) to a 263-byte POST; sla-proxy runs `--algorithm "
        f"fixed --initial-limit {config.sla_limit}`.",
        "",
    ]
    body = []
    for row in rows:
        unit = "req/s" if row.kind == "json" else "streams/s"
        cells = [
            f"{_rate(row.rate[t])} ({_rate(row.rate_min[t])}-{_rate(row.rate_max[t])})"
            if t in row.rate
            else "-"
            for t in TARGETS
        ]
        ratio = f"**{_num(row.ratio)}** ({_num(row.ratio_min)}-{_num(row.ratio_max)})"
        extra = [_num(row.others_cores_max), str(row.errors)]
        body.append([f"{row.kind.upper()}, c={row.level}, {unit}", *cells, ratio, *extra])
    for row in (r for r in rows if r.level == 1):
        cells = [_num(row.p50_ms.get(t), ".3f") for t in TARGETS]
        added = f"+{_num(row.added_p50_ms, '.3f')} ms"
        body.append([f"{row.kind.upper()}, p50 at c=1, ms", *cells, added, "", ""])
    for row in rows:
        cpu = row.cpu_us_per_request
        cells = ["", "", *(_num(cpu.get(t), ".0f") for t in TARGETS[2:])]
        ratio = _num(cpu["sla-proxy"] / cpu["bare aiohttp"]) if len(cpu) == 2 else "-"
        body.append([f"{row.kind.upper()}, c={row.level}, CPU µs/request", *cells, ratio, "", ""])
    header = ["", *TARGETS, "sla-proxy / bare", "others' cores (max)", "errors"]
    return lines + _table(header, body) + [""]


def _paced(result: RefResult) -> list[str]:
    rows, config = result.paced_rows, result.config
    if not rows:
        return []
    lines = [
        "## Paced streams (issue 12 part 2)",
        "",
        f"{config.paced_streams} concurrent streams, one SSE event per token written on its "
        f"own every {1000 * config.paced_interval:g} ms, {config.paced_tokens} tokens per "
        f"stream; {config.rounds} rounds of {config.paced_seconds:g} s timed after "
        f"{config.paced_warmup:g} s of warm-up, paths in alternating order. Delay: the "
        "client's arrival time minus the time the upstream wrote the event, both "
        "`time.monotonic()` (CLOCK_MONOTONIC, the same clock as `perf_counter` on Linux); "
        "added: minus the direct path's, per round. The proxies run alone on one CPU; "
        "the upstream and the client share the other. CPU from /proc over the timed window.",
        "",
    ]
    body = [
        [
            row.path,
            str(row.events),
            _num(row.p50_ms, ".3f"),
            _num(row.p99_ms, ".3f"),
            _num(row.added_p50_ms, "+.3f"),
            _num(row.added_p99_ms, "+.3f"),
            _num(row.proxy_cpu_us_per_event, ".1f"),
            _num(row.proxy_cores),
            _num(row.others_cores_max),
            str(row.failures),
        ]
        for row in rows
    ]
    header = ["path", "events", "delay p50 ms", "p99 ms", "added p50 ms", "added p99 ms"]
    header += ["proxy CPU µs/event", "proxy cores", "others' cores (max)", "failures"]
    return lines + _table(header, body) + [""]


def _clients(result: RefResult) -> list[str]:
    slow, queued = result.slow, result.queued
    lines: list[str] = []
    if slow is not None:
        ratios = slow.ratios
        still = [r.sockets.open for r in slow.runs if r.sockets is not None]
        lines += [
            "## Slow and idle clients (issue 10)",
            "",
            f"sla-proxy `{' '.join(slow.options)}`; fd limit {slow.fd_limit}. A normal request "
            f"(wrk, one connection) without, then with {slow.idle} idle and {slow.trickling} "
            f"trickling sockets (one header byte every {result.config.trickle_interval:g} s) "
            "open, the order alternating per round.",
            "",
        ]
        lines += _table(
            ["p50 without, ms", "p50 with, ms", "ratio (min-max)", "slow sockets still open"],
            [
                [
                    _num(slow.p50_without_ms, ".3f"),
                    _num(slow.p50_with_ms, ".3f"),
                    f"**{_num(slow.ratio)}** ({_num(min(ratios, default=None))}-"
                    f"{_num(max(ratios, default=None))})",
                    ", ".join(str(n) for n in still),
                ]
            ],
        )
        lines.append("")
    if queued is not None:
        lines += [
            "## Memory with a full queue (issue 10)",
            "",
            f"sla-proxy `{' '.join(queued.options)}` in front of an upstream that holds the "
            "one admitted request.",
            "",
        ]
        lines += _table(
            _QUEUED_HEADER,
            [
                [
                    f"{queued.reached} of {queued.target}",
                    f"{queued.rss_idle_bytes / MIB:.1f}",
                    f"{queued.rss_queued_bytes / MIB:.1f}",
                    f"{queued.hwm_bytes / MIB:.1f}",
                    _num(queued.kib_per_request, ".1f"),
                    f"{queued.fill_seconds:.1f}",
                    f"{queued.fill_cpu_seconds:.1f}",
                    str(queued.refused),
                    _num(queued.drain_seconds, ".2f"),
                ]
            ],
        )
        lines.append("")
    return lines


def _contention(result: RefResult) -> list[str]:
    others = [r.others_cores for r in result.runs] + [r.others_cores for r in result.paced]
    cpus = result.machine.get("cpus") or 2
    if not others or max(others) <= cpus / 4:
        return []
    return [
        f"Note: other tenants kept up to {max(others):.1f} of {cpus} cores busy during these "
        "runs (median "
        f"{sorted(others)[len(others) // 2]:.1f}); absolute rates drift with that, the "
        "per-round ratios less so. Compare runs with low others' CPU.",
        "",
    ]


def markdown(result: RefResult) -> str:
    lines = [
        "# sla-proxy against reference proxies",
        "",
        f"`{result.command}` on {result.machine.get('date_utc', '?')} UTC, "
        f"{result.machine.get('cpus', '?')} CPUs ({result.machine.get('cpu_model', '?')}); "
        f"the machine is shared. Reference sections took {result.duration:.0f} s.",
        "",
    ]
    lines += _reference(result) + _paced(result) + _clients(result)
    lines += _contention(result)
    found = goals(result)
    if found:
        lines += ["## Goals", ""]
        lines += _table(["goal", "measured", "met"], [[g, m, _met(ok)] for g, m, ok in found])
    return "\n".join(lines) + "\n"


def to_dict(result: RefResult) -> dict[str, Any]:
    return {
        "command": result.command,
        "config": asdict(result.config),
        "machine": result.machine,
        "cpus": result.cpus,
        "versions": result.versions,
        "duration": result.duration,
        "reference": [asdict(row) for row in result.rows],
        "reference_runs": [asdict(run) | {"rate": run.wrk.rate} for run in result.runs],
        "paced": [asdict(row) for row in result.paced_rows],
        "paced_runs": [asdict(run) for run in result.paced],
        "slow_clients": None
        if result.slow is None
        else asdict(result.slow) | {"ratio": result.slow.ratio},
        "queued": None
        if result.queued is None
        else asdict(result.queued) | {"kib_per_request": result.queued.kib_per_request},
        "goals": [{"goal": g, "measured": m, "met": ok} for g, m, ok in goals(result)],
    }


def write_reference(result: RefResult, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "reference.json", out / "reference.md"]
    paths[0].write_text(json.dumps(to_dict(result), indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    return paths
