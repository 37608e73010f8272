"""Which pool member a request leaves the queue for (level 0: pure).

The member with the most headroom: free permits relative to its limit. Relative, not
absolute, so members fill in proportion to what each can serve (an H100 at limit 160
and a DGX Spark at limit 20 are both half full at 80 and 10), and each one's
controller sees its own limit in use, the condition it grows on. A request never waits
for one member while another has room: the pool's queue only holds requests while
every member in rotation is at its limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Slot:
    """A member as dispatch sees it; `serving` False: ejected or draining."""

    limit: int
    inflight: int
    serving: bool = True

    @property
    def free(self) -> int:
        return self.limit - self.inflight

    @property
    def headroom(self) -> float:
        return self.free / self.limit if self.limit > 0 else -1.0


def choose(
    slots: Sequence[Slot], *, exclude: int | None = None, over_limit: bool = False
) -> int | None:
    """The index of the serving member with the largest relative headroom among those
    with a free permit (ties: more free permits, then the earlier member); None when
    none has room. `over_limit`: when none has room, the serving member least over
    its limit (a retry that already holds its place in the pool)."""
    best: int | None = None
    best_key: tuple[float, int] | None = None
    for index, slot in enumerate(slots):
        if index == exclude or not slot.serving or (slot.free <= 0 and not over_limit):
            continue
        key = (slot.headroom, slot.free)
        if best_key is None or key > best_key:
            best, best_key = index, key
    return best


def pool_limit(slots: Sequence[Slot]) -> int:
    """The limit of the pool's queue: the requests running on every member plus the
    free permits of the serving ones. The queue hands out a permit exactly when some
    serving member has room: a member over its limit (just cut) or out of rotation
    holds its own requests without taking another member's room."""
    return sum(max(s.limit, s.inflight) if s.serving else s.inflight for s in slots)


__all__ = ["Slot", "choose", "pool_limit"]
