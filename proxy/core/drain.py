"""How fast a saturated limiter's queue moves: permits released per second while the
limit is fully in use (pure; the caller passes the clock's reading)."""

from __future__ import annotations

import math

# Releases seen at a full limit before the drain rate counts as evidence.
MIN_EVIDENCE = 3


class DrainRate:
    """Permits released per second while the limit is fully in use.

    Only then does the release rate measure how fast the queue moves; while the limit
    is not in use it measures arrivals, and idle time would read as "no capacity".
    So the exponential decay runs on a clock that advances only while saturated, and
    the sum is normalised by the span observed so the first seconds are not biased low.
    """

    def __init__(self, time_constant: float) -> None:
        self._tau = time_constant
        self._busy_total = 0.0
        self._busy_since: float | None = None
        self._decayed = 0.0
        self._decayed_limit = 0.0  # the same decayed sum, each release weighted by its limit
        self._decayed_at = 0.0
        self._releases = 0

    def _busy(self, now: float) -> float:
        if self._busy_since is None:
            return self._busy_total
        return self._busy_total + max(0.0, now - self._busy_since)

    def set_saturated(self, now: float, saturated: bool) -> None:
        if saturated and self._busy_since is None:
            self._busy_since = now
        elif not saturated and self._busy_since is not None:
            self._busy_total = self._busy(now)
            self._busy_since = None

    def record_release(self, now: float, limit: int = 1) -> None:
        busy = self._busy(now)
        decay = math.exp((self._decayed_at - busy) / self._tau)
        self._decayed = self._decayed * decay + 1.0
        self._decayed_limit = self._decayed_limit * decay + limit
        self._decayed_at = busy
        self._releases += 1

    def limit(self) -> float | None:
        """The limit the rate was measured at (averaged with the rate's own weights): a
        queue drains about limit-proportionally faster once the limit has grown."""
        return self._decayed_limit / self._decayed if self._decayed > 0 else None

    def rate(self, now: float) -> float | None:
        busy = self._busy(now)
        if self._releases < MIN_EVIDENCE or busy <= 0.0:
            return None
        decayed = self._decayed * math.exp((self._decayed_at - busy) / self._tau)
        return decayed / (self._tau * -math.expm1(-busy / self._tau))
