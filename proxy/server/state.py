"""Per-app state shared by the data port, the admin port and the control loop."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from proxy.core.outcome import SIGNALS, Outcome, Sample
from proxy.metrics import Metrics
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.control import ControlLoop
    from proxy.limiter import Limiter
    from proxy.server.alertmanager import AlertPusher
    from proxy.server.upstream import UpstreamHealth

ADMITTED_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}
)


class CancelPhase(StrEnum):
    QUEUED = "queued"
    BEFORE_FIRST = "before_first_token"
    STREAMING = "streaming"


@dataclass
class ProxyState:
    settings: Settings
    metrics: Metrics
    limiter: Limiter
    upstream: UpstreamHealth
    control: ControlLoop
    admitted_paths: frozenset[str] = ADMITTED_PATHS
    pusher: AlertPusher | None = None  # set while running when --alertmanager-url is given
    draining: bool = False  # shutting down: finish what is in flight, take nothing new
    _session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the upstream session exists only while the app runs")
        return self._session

    def record(self, sample: Sample) -> None:
        """Everything one finished request tells: metrics, the latency window, the tally."""
        metrics = self.metrics
        metrics.requests.labels(sample.outcome.value, _status_class(sample.status)).inc()
        if sample.output_tokens is not None:
            metrics.tokens.labels("completion").inc(sample.output_tokens)
        if sample.prompt_tokens is not None:
            metrics.tokens.labels("prompt").inc(sample.prompt_tokens)
        if sample.outcome is not Outcome.SUCCESS:
            self.control.observe(sample, met_sla=False)
            return
        all_met = True
        targets = self.settings.sla_targets()
        for signal in SIGNALS:
            value = sample.signal(signal)
            if value is None:
                continue
            metrics.latency[signal].observe(value)
            target = targets.get(signal)
            if target is not None:
                met = value <= target
                all_met &= met
                metrics.sla_requests.labels(signal, "met" if met else "missed").inc()
        metrics.sla_requests.labels("all", "met" if all_met else "missed").inc()
        self.control.observe(sample, met_sla=all_met)


def _status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status is not None else "none"


STATE: web.AppKey[ProxyState] = web.AppKey("proxy_state", ProxyState)
