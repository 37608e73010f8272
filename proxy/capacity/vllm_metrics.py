"""Read a running vLLM's KV-cache size from its Prometheus text (`vllm:cache_config_info`,
an info-style gauge whose labels carry block_size and num_gpu_blocks)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

INFO_NAME = "vllm:cache_config_info"


@dataclass(frozen=True, slots=True)
class CacheConfig:
    block_size: int
    num_gpu_blocks: int


def parse_cache_config(text: str) -> CacheConfig:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != INFO_NAME:
                continue
            labels = sample.labels
            try:
                return CacheConfig(int(labels["block_size"]), int(labels["num_gpu_blocks"]))
            except (KeyError, ValueError):
                # vLLM publishes "None" until the engine has profiled its memory.
                raise ValueError(
                    f"{INFO_NAME} has no usable block_size/num_gpu_blocks: {labels}"
                ) from None
    raise ValueError(f"no {INFO_NAME} in the metrics (is this a vLLM /metrics page?)")


def fetch_cache_config(url: str, timeout_s: float = 10.0) -> CacheConfig:
    """GET `url` (a /metrics page) with the standard library: the planner stays light."""
    from urllib.request import urlopen

    with urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode("utf-8", errors="replace")
    return parse_cache_config(text)
