"""Static vs continuous batching, measured on the simulator's engine (`sla-proxy batching`).

The same arrivals (Poisson, or all queued at once for saturation) and the same
lognormal output lengths go through the pure engine twice: once as vLLM schedules
(continuous batching, `max_num_seqs` = the batch size) and once with static batching
(`proxy.sim.batching.StaticBatching`: a batch of N starts when full or timed out and
runs until its longest sequence is done). The engine runs on its own simulated clock,
so a run is exact, repeatable and takes seconds. `workload` draws the requests,
`simulate` runs one mode, `compare` sweeps output-length spread, load and batch size,
`report` and `plot` write the markdown table, JSON and PNGs.
"""
