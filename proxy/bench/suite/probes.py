"""Non-streamed probes timed on both endpoints, and the proxy's own overhead
histogram scraped from its admin port."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.bench.suite.overhead import added_ms, div, quantile

if TYPE_CHECKING:
    import aiohttp

    from proxy.load.stats import Dist


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    count: int  # per endpoint
    failures: int
    direct: Dist | None  # seconds
    proxied: Dist | None

    @property
    def added_p50_ms(self) -> float | None:
        return added_ms(quantile(self.proxied), quantile(self.direct))

    @property
    def e2e_p50_ratio(self) -> float | None:
        return div(quantile(self.proxied), quantile(self.direct))


Call = Callable[["aiohttp.ClientSession", str], Awaitable[bool]]


def probe_calls(model: str, max_tokens: int) -> dict[str, Call]:
    """Name -> one request against a base URL, True when it succeeded."""

    body = {
        "model": model,
        "messages": [{"role": "user", "content": "What is continuous batching?"}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
    }

    async def chat(session: aiohttp.ClientSession, url: str) -> bool:
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            await response.read()
            return response.status == 200

    async def models(session: aiohttp.ClientSession, url: str) -> bool:
        async with session.get(f"{url}/v1/models") as response:
            await response.read()
            return response.status == 200

    return {f"chat, not streamed, {max_tokens} tokens": chat, "GET /v1/models": models}


async def run_probe(
    session: aiohttp.ClientSession, name: str, call: Call, direct: str, proxied: str, count: int
) -> ProbeResult:
    """Sequential requests, alternating which endpoint goes first (ABBA)."""
    from proxy.load.stats import Dist

    times: dict[str, list[float]] = {direct: [], proxied: []}
    failures = 0
    for index in range(count):
        for url in (direct, proxied) if index % 2 == 0 else (proxied, direct):
            start = time.perf_counter()
            ok = await call(session, url)
            if ok:
                times[url].append(time.perf_counter() - start)
            else:
                failures += 1
    return ProbeResult(name, count, failures, Dist.of(times[direct]), Dist.of(times[proxied]))


async def scrape_overhead(session: aiohttp.ClientSession, admin_url: str) -> dict[str, float]:
    """The proxy's own `proxy_overhead_seconds` histogram: count, sum, share <= 0.1 ms."""
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(f"{admin_url}/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "proxy_overhead_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                found["count"] = sample.value
            elif sample.name.endswith("_sum"):
                found["sum_seconds"] = sample.value
            elif sample.labels.get("le") == "0.0001":
                found["le_0_1ms"] = sample.value
    if found.get("count"):
        found["mean_seconds"] = found.get("sum_seconds", 0.0) / found["count"]
        found["share_le_0_1ms"] = found.get("le_0_1ms", 0.0) / found["count"]
    return found
