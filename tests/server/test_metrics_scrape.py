"""A fresh proxy's first scrape already has every labelled series whose label values
are known, at 0, so rate(), ratios and alerts work from the start."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from proxy.core.ejection import Reason
from proxy.core.outcome import Outcome, UpstreamErrorKind
from proxy.errors import ShedReason
from proxy.limiter import Priority
from proxy.metrics import STATUS_CLASSES
from proxy.server.app import RunningProxy


async def scrape(proxy: RunningProxy) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.admin_url}/metrics") as response,
    ):
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def test_labelled_series_are_zero_before_any_event(proxy: RunningProxy) -> None:
    samples = await scrape(proxy)
    (member,) = proxy.state.pool.members
    expected = [
        *(
            series("proxy_requests_total", outcome=o.value, status_class=c)
            for o in Outcome
            for c in STATUS_CLASSES
        ),
        *(
            series("proxy_shed_total", reason=r.value, priority=p.value)
            for r in ShedReason
            for p in Priority
        ),
        *(series("proxy_arrivals_total", priority=p.value) for p in Priority),
        *(
            series("proxy_upstream_errors_total", upstream=member.name, kind=k.value)
            for k in UpstreamErrorKind
        ),
        *(
            series("proxy_upstream_ejections_total", upstream=member.name, reason=r.value)
            for r in Reason
        ),
        series("proxy_upstream_requests_total", upstream=member.name),
        *(series("proxy_queue_depth", priority=p.value) for p in Priority),
    ]
    missing = [key for key in expected if key not in samples]
    assert not missing
    assert all(samples[key] == 0 for key in expected)
