"""How the engine admits waiting requests: continuous (vLLM) or static batching (pure).

Continuous batching (vLLM, Orca's iteration-level scheduling) admits waiting sequences
at every step while the token budget, `max_num_seqs` and free KV blocks allow, so a
finished sequence's slot is refilled at the next step.

Static batching is what serving did before: wait until `batch_size` requests are
queued or the oldest has waited `timeout` simulated seconds, start them as one
batch, run it until its longest sequence finishes, and admit nothing in between.
A slot whose sequence finished early stays empty until the whole batch is done.
(The engine still skips finished sequences' compute, so the step time shrinks as
the batch empties; padded static batching, as in a plain `generate()` loop, would
be slower still. The comparison is therefore generous to static batching.)
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Literal, Protocol


class Queued(Protocol):
    @property
    def arrival(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ContinuousBatching:
    kind: Literal["continuous"] = "continuous"


@dataclass(frozen=True, slots=True)
class StaticBatching:
    batch_size: int = 32
    timeout: float = 0.1  # simulated seconds the oldest waiting request waits, at most
    kind: Literal["static"] = "static"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.timeout < 0:
            raise ValueError("batch timeout must be >= 0")

    def launch_at(self, waiting: Seq[Queued]) -> float | None:
        """When an idle engine starts the next batch from `waiting` (the queue in FIFO
        order): now when it holds a full batch, else the oldest's arrival + timeout."""
        if not waiting:
            return None
        if len(waiting) >= self.batch_size:
            return -float("inf")
        return waiting[0].arrival + self.timeout


Batching = ContinuousBatching | StaticBatching
CONTINUOUS = ContinuousBatching()


def describe(batching: Batching) -> str:
    if isinstance(batching, StaticBatching):
        return f"static (batch {batching.batch_size}, timeout {batching.timeout:g} s)"
    return "continuous"
