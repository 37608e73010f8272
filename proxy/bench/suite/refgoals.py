"""The goals issues 12 and 10 set, checked against one run's figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.bench.suite.refrun import RefResult

MIB = 2**20


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def goals(result: RefResult) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met?) for every goal the run has figures for."""
    found: list[tuple[str, str, bool | None]] = []
    for row in result.rows:
        if row.ratio is not None:
            goal = f"sla-proxy >= 0.9x bare, {row.kind.upper()} c={row.level}"
            found.append((goal, f"{row.ratio:.2f}", row.ratio >= 0.9))
        if row.level == 1 and row.added_p50_ms is not None:
            goal = f"added p50 <= 0.1 ms over bare, {row.kind.upper()} c=1"
            found.append((goal, f"{row.added_p50_ms:+.3f} ms", row.added_p50_ms <= 0.1))
    for paced in result.paced_rows:
        if paced.path == "sla-proxy" and paced.added_p99_ms is not None:
            cores = paced.proxy_cores
            measured = f"{paced.added_p99_ms:+.2f} ms on {_num(cores)} cores"
            ok = paced.added_p99_ms <= 2.0 and cores is not None and cores <= 0.5
            found.append(("paced streams: added p99 <= 2 ms on <= 0.5 core", measured, ok))
    if result.slow is not None and result.slow.ratio is not None:
        ratio = result.slow.ratio
        found.append(("p50 with slow sockets <= 1.5x without", f"{ratio:.2f}", ratio <= 1.5))
    if result.queued is not None:
        rss, done = result.queued.rss_queued_bytes, result.queued.reached == result.queued.target
        label = f"RSS with {result.queued.target} queued < 200 MB"
        measured = f"{rss / 1e6:.0f} MB ({rss / MIB:.0f} MiB)"
        found.append((label, measured, done and rss < 200e6))
    return found
