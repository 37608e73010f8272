"""A vLLM stand-in: continuous batching over a paged KV cache, timed by a roofline.

Command line: `sla-proxy sim --port P [--host H] [--profile NAME] [--speed X] [--seed N]`;
a pool in one process with `--engines N` (ports P..P+N-1) or repeated `--engine PROFILE[:PORT]`.
Routes as vLLM's OpenAI server: /v1/models, /v1/chat/completions, /v1/completions
(streamed or not), /health, /metrics (vllm:* names); plus /sim/faults (GET/POST/DELETE)
and /sim/state.

In-process API (tests, benchmarks, scenarios):

    from proxy.sim import running_sim

    async with running_sim(profile="h100-llama3-8b", speed=20, seed=0) as sim:
        sim.url                        # "http://127.0.0.1:<free port>"
        sim.engine.num_running         # num_waiting, kv_usage, stats.preemptions, now
        sim.set_faults(error_rate=0.2, error_status=503)   # as POST /sim/faults
        sim.clear_faults()

    app = create_sim_app(SimConfig(profile="cpu-tiny", speed=10, seed=1))
    app[SIM_KEY].engine                # the same engine, for your own AppRunner

Time: the engine runs on simulated seconds; at `speed` X the wall-clock latency a
client sees is simulated / X. /metrics reports simulated seconds (what the modelled
vLLM would report). Pure pieces: `proxy.llm.roofline` (step time), `engine.Engine`
(scheduler, no clock of its own beyond `now`), `pacing.Pacer`; `sweep` runs a
closed-loop concurrency sweep on a virtual clock (`python -m proxy.sim.sweep`).
"""

from proxy.sim.app import SIM_KEY, SimConfig, SimHandle, SimState, create_sim_app, running_sim
from proxy.sim.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "SIM_KEY",
    "Profile",
    "SimConfig",
    "SimHandle",
    "SimState",
    "create_sim_app",
    "get_profile",
    "running_sim",
]
