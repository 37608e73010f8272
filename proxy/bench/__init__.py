"""Load benchmark: concurrency and request-rate sweeps against any OpenAI-compatible
server (vLLM, the proxy, the simulator), with vLLM-style goodput and a saturation
finder.

Library entry points for the scenario runner and `make bench`:

- `sweep.run_sweep(config, progress=None) -> SweepResult` — the whole sweep;
- `client.send_request(...) -> RequestResult` — one streamed request, timed per chunk;
- `stats.summarize(...) -> LevelStats`, `stats.Slo.parse(...)`, `stats.is_good(...)`;
- `saturation.find_saturation(...)`, `report.*`, `plot.write_png(...)`.

Nothing here is imported by the proxy itself.
"""
