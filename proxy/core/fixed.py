"""The baseline: a limit that never moves.

This is what HAProxy's `maxconn` or vLLM's `--max-num-seqs` give; benchmarks run
it next to the adaptive controllers to show what adapting buys.
"""

from __future__ import annotations

from proxy.core.controller import Cause, Decision, Observation


class FixedController:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit

    def decide(self, obs: Observation) -> Decision:
        return Decision(
            limit=self.limit,
            cause=Cause.FIXED,
            reason=f"fixed limit {self.limit}: the fixed algorithm never moves it",
            details={"peak_inflight": obs.peak_inflight, "queued": obs.queued},
        )
