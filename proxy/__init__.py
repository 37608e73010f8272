"""sla-proxy: an adaptive concurrency-limiting reverse proxy for vLLM."""

__version__ = "0.1.0"
