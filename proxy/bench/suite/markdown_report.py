"""The run as the Markdown report (printed, and written to bench.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.bench.suite.overhead import quantile

if TYPE_CHECKING:
    from proxy.bench.suite.result import SuiteResult


def _ms(seconds: float | None, digits: int = 1) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.{digits}f}"


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(result: SuiteResult) -> str:
    config, load, machine = result.config, result.load, result.machine
    mib = 1 / 2**20
    lines = [
        "# sla-proxy benchmarks",
        "",
        f"`{result.command}` on {machine['date_utc']} UTC: {machine['cpus']} CPUs "
        f"({machine['cpu_model']}), Python {machine['python']}, load average "
        f"{machine['load_average_at_start']} at start, {machine.get('load_average_at_end')} "
        f"at end (the machine is shared). Simulator `{config.profile}` at speed "
        f"{config.speed:g}; streamed chat, {config.max_tokens} output tokens; the proxy runs "
        "`--algorithm fixed --initial-limit 1024 --max-limit 1024 --queue-size 0`. "
        "Levels run from the top down, after a burst of top-level concurrency that opens "
        "the proxy's upstream connections; each level alternates which endpoint goes "
        f"first. Whole run {result.duration:.0f} s.",
        "",
        "## Proxy overhead (closed-loop sweep, direct and proxied interleaved per level)",
        "",
        f"Median over {config.rounds} rounds (whole sweeps); brackets: the rounds' range.",
        "",
    ]
    lines += _md_table(
        [
            "concurrency",
            "requests",
            "TTFT p50 direct / proxied ms",
            "added ms [range]",
            "TTFT p90 direct / proxied ms",
            "added ms",
            "req/s ratio [range]",
            "e2e p50 ratio",
            "proxy CPU ms/req",
            "others' CPU, cores",
            "failed d/p",
        ],
        [
            [
                str(r.level),
                str(r.requests),
                f"{_ms(r.ttft_p50_direct)} / {_ms(r.ttft_p50_proxied)}",
                f"{_num(r.ttft_p50_added_ms, '+.1f')} "
                f"[{_num(r.ttft_p50_added_min, '+.1f')}, {_num(r.ttft_p50_added_max, '+.1f')}]",
                f"{_ms(r.ttft_p90_direct)} / {_ms(r.ttft_p90_proxied)}",
                _num(r.ttft_p90_added_ms, "+.1f"),
                f"{_num(r.throughput_ratio)} "
                f"[{_num(r.throughput_ratio_min)}, {_num(r.throughput_ratio_max)}]",
                _num(r.e2e_p50_ratio),
                _num(r.proxy_cpu_ms_per_request, ".2f"),
                _num(r.others_cores, ".2f"),
                f"{r.failed_direct}/{r.failed_proxied}",
            ]
            for r in load.overhead
        ],
    )
    lines += ["", "## Non-streamed probes (sequential, alternating)", ""]
    lines += _md_table(
        ["probe", "n", "direct p50 / p90 ms", "proxied p50 / p90 ms", "added p50 ms", "ratio"],
        [
            [
                p.name,
                str(p.count),
                f"{_ms(quantile(p.direct), 2)} / {_ms(quantile(p.direct, 'p90'), 2)}",
                f"{_ms(quantile(p.proxied), 2)} / {_ms(quantile(p.proxied, 'p90'), 2)}",
                _num(p.added_p50_ms, "+.2f"),
                _num(p.e2e_p50_ratio),
            ]
            for p in load.probes
        ],
    )
    lines += ["", "## CPU and memory (from /proc, over probes + sweep)", ""]
    lines += _md_table(
        [
            "process",
            "CPU s",
            "requests",
            "CPU s / 1k req",
            "RSS idle MiB",
            "RSS after MiB",
            "peak RSS MiB",
        ],
        [
            [
                u.role,
                f"{u.cpu_seconds:.2f}",
                str(u.requests),
                _num(u.cpu_per_1k, ".2f"),
                f"{u.idle.rss_bytes * mib:.1f}",
                f"{u.after.rss_bytes * mib:.1f}",
                f"{u.after.hwm_bytes * mib:.1f}",
            ]
            for u in load.processes
        ],
    )
    metric = load.overhead_metric
    lines += [
        "",
        f"Proxy CPU at rest: {_num(load.idle_proxy_cpu_percent, '.1f')} % of a core. "
        f"`proxy_overhead_seconds`: {metric.get('count', 0):.0f} requests, mean "
        f"{_ms(metric.get('mean_seconds'), 3)} ms, "
        f"{100 * metric.get('share_le_0_1ms', 0.0):.0f} % at or below 0.1 ms.",
        "",
        "## Hot-path micro-benchmarks (median of per-repeat ratios)",
        "",
    ]
    lines += _md_table(
        ["what", "target", "ns / op", "baseline", "ns / op", "ratio", "range", "op"],
        [
            [
                m.name,
                f"`{m.target}`",
                f"{m.target_ns:.0f}",
                f"`{m.baseline}`",
                f"{m.baseline_ns:.0f}",
                f"{m.ratio:.2f}",
                f"{m.ratio_min:.2f}-{m.ratio_max:.2f}",
                f"{m.unit} (x{m.ops}, {m.repeats} repeats)",
            ]
            for m in result.micro
        ],
    )
    if result.notes:
        lines += ["", "Notes:", "", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"
