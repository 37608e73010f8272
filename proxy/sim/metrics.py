"""vLLM-named Prometheus metrics, read from the engine at scrape time.

A custom collector on the app's own CollectorRegistry: gauges and counters are the
engine's current numbers, histograms come from `EngineStats`. Latencies are in
*simulated* seconds (what the modelled vLLM would report), whatever `--speed` is;
divide by the speed to compare with wall-clock latencies measured by a client.
`StreamCollector` adds the simulator's own counters (`sim_*`), which vLLM does not have.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from proxy.sim.engine import Engine
from proxy.sim.histogram import Histogram
from proxy.sim.streaming import EventCap

LABELS = ["model_name", "engine"]


class EngineCollector(Collector):
    def __init__(self, engine: Engine, model_name: str) -> None:
        self.engine = engine
        self.values = [model_name, "0"]

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=LABELS)
        family.add_metric(self.values, value)
        return family

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=LABELS)
        family.add_metric(self.values, value)
        return family

    def _histogram(self, name: str, doc: str, hist: Histogram) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=LABELS)
        family.add_metric(self.values, hist.cumulative(), hist.sum)
        return family

    def collect(self) -> Iterator[Metric]:
        e, s = self.engine, self.engine.stats
        yield self._gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.",
            e.num_running,
        )  # fmt: skip
        yield self._gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.",
            e.num_waiting,
        )  # fmt: skip
        yield self._gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", e.kv_usage
        )
        yield self._counter(
            "vllm:num_preemptions", "Cumulative number of preemption from the engine.",
            s.preemptions,
        )  # fmt: skip
        yield self._counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", s.prompt_tokens
        )
        yield self._counter(
            "vllm:generation_tokens", "Number of generation tokens processed.",
            s.generation_tokens,
        )  # fmt: skip
        success = CounterMetricFamily(
            "vllm:request_success", "Count of successfully processed requests.",
            labels=[*LABELS, "finished_reason"],
        )  # fmt: skip
        for reason in ("stop", "length", "abort"):
            count = s.aborted if reason == "abort" else s.finished[reason]
            success.add_metric([*self.values, reason], count)
        yield success
        yield self._histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            s.ttft,
        )
        yield self._histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            s.itl,
        )
        yield self._histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            s.e2e,
        )
        p = e.profile
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=["block_size", "num_gpu_blocks", "gpu_memory_utilization", "engine"],
        )
        info.add_metric(
            [str(p.block_size), str(p.num_gpu_blocks), str(p.gpu_memory_utilization), "0"], 1.0
        )
        yield info


class StreamCollector(Collector):
    """The simulator's own stream accounting, outside the vllm: namespace: vLLM has no
    such cap, so these are not vLLM metrics."""

    def __init__(self, cap: EventCap) -> None:
        self.cap = cap

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "sim_stream_events",
            "Stream wake-ups handed to response writers (one SSE event each).",
            value=self.cap.sent,
        )
        yield CounterMetricFamily(
            "sim_coalesced_events",
            "Stream events vLLM would have sent separately, merged into a later event "
            "because all streams together exceeded the simulator's event-rate cap.",
            value=self.cap.coalesced,
        )
