"""The proxy's overhead per level: direct against proxied within one round, and the
median over rounds."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.bench.sweep import SweepResult
    from proxy.load.stats import Dist


@dataclass(frozen=True, slots=True)
class OverheadRow:
    """One level, direct against proxied: one round's figures, or the median over
    rounds (then the *_min / *_max fields give the rounds' spread)."""

    level: int
    rounds: int
    requests: int  # per endpoint, all rounds
    failed_direct: int  # failed or cut
    failed_proxied: int
    ttft_p50_direct: float | None  # seconds
    ttft_p50_proxied: float | None
    ttft_p90_direct: float | None
    ttft_p90_proxied: float | None
    ttft_p50_added_ms: float | None  # proxied minus direct
    ttft_p90_added_ms: float | None
    throughput_ratio: float | None  # proxied req/s over direct req/s
    e2e_p50_ratio: float | None  # proxied over direct
    proxy_cpu_ms_per_request: float | None  # during the proxied level
    others_cores: float | None  # other tenants' CPU use (cores) during both levels
    ttft_p50_added_min: float | None = None
    ttft_p50_added_max: float | None = None
    throughput_ratio_min: float | None = None
    throughput_ratio_max: float | None = None


def added_ms(proxied: float | None, direct: float | None) -> float | None:
    return None if proxied is None or direct is None else 1000 * (proxied - direct)


def div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def quantile(dist: Dist | None, attr: str = "p50") -> float | None:
    return None if dist is None else float(getattr(dist, attr))


def overhead_rows(
    sweep: SweepResult, cpu: dict[tuple[str, int], dict[str, float]]
) -> list[OverheadRow]:
    """One round: a row per level both endpoints finished."""
    direct = {int(s.level): s for s in sweep.for_endpoint("direct")}
    rows = []
    for proxied in sweep.for_endpoint("proxied"):
        level = int(proxied.level)
        base = direct.get(level)
        if base is None:
            continue
        spent = cpu.get(("proxied", level), {}).get("proxy")
        others = [cpu.get((who, level), {}).get("others") for who in ("direct", "proxied")]
        ttft = {
            (who, q): quantile(stats.ttft, q)
            for who, stats in (("direct", base), ("proxied", proxied))
            for q in ("p50", "p90")
        }
        rows.append(
            OverheadRow(
                level=level,
                rounds=1,
                requests=proxied.requests,
                failed_direct=base.failed + base.cancelled,
                failed_proxied=proxied.failed + proxied.cancelled,
                ttft_p50_direct=ttft["direct", "p50"],
                ttft_p50_proxied=ttft["proxied", "p50"],
                ttft_p90_direct=ttft["direct", "p90"],
                ttft_p90_proxied=ttft["proxied", "p90"],
                ttft_p50_added_ms=added_ms(ttft["proxied", "p50"], ttft["direct", "p50"]),
                ttft_p90_added_ms=added_ms(ttft["proxied", "p90"], ttft["direct", "p90"]),
                throughput_ratio=div(proxied.req_per_s, base.req_per_s),
                e2e_p50_ratio=div(quantile(proxied.e2e), quantile(base.e2e)),
                proxy_cpu_ms_per_request=div(
                    1000 * spent if spent is not None else None, proxied.requests
                ),
                others_cores=max((v for v in others if v is not None), default=None),
            )
        )
    return rows


def median_rows(rounds: list[list[OverheadRow]]) -> list[OverheadRow]:
    """Per level, the median of each figure over the rounds: a load spike from the
    machine's other tenants during one round moves the median little."""
    by_level: dict[int, list[OverheadRow]] = {}
    for rows in rounds:
        for row in rows:
            by_level.setdefault(row.level, []).append(row)
    merged = []
    for level, rows in sorted(by_level.items()):

        def values(name: str, rows: list[OverheadRow] = rows) -> list[float]:
            return [v for row in rows if (v := getattr(row, name)) is not None]

        def median(name: str) -> float | None:
            found = values(name)
            return statistics.median(found) if found else None

        added, ratio = values("ttft_p50_added_ms"), values("throughput_ratio")
        merged.append(
            OverheadRow(
                level,
                len(rows),
                sum(row.requests for row in rows),
                sum(row.failed_direct for row in rows),
                sum(row.failed_proxied for row in rows),
                ttft_p50_direct=median("ttft_p50_direct"),
                ttft_p50_proxied=median("ttft_p50_proxied"),
                ttft_p90_direct=median("ttft_p90_direct"),
                ttft_p90_proxied=median("ttft_p90_proxied"),
                ttft_p50_added_ms=median("ttft_p50_added_ms"),
                ttft_p90_added_ms=median("ttft_p90_added_ms"),
                throughput_ratio=median("throughput_ratio"),
                e2e_p50_ratio=median("e2e_p50_ratio"),
                proxy_cpu_ms_per_request=median("proxy_cpu_ms_per_request"),
                others_cores=median("others_cores"),
                ttft_p50_added_min=min(added, default=None),
                ttft_p50_added_max=max(added, default=None),
                throughput_ratio_min=min(ratio, default=None),
                throughput_ratio_max=max(ratio, default=None),
            )
        )
    return merged
