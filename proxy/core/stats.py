"""The one percentile definition of the project: nearest rank.

The q-percentile of n values is the smallest value such that at least a fraction q
of the values are at or below it. With it, "P90 <= target" holds exactly when "at
least 90% of the values meet the target", so the controller's window, the
attainment metric, the scenarios and the load benchmark never disagree. (vLLM's
`bench serve` interpolates linearly, as numpy does; on the few hundred samples of a
level the two differ by less than one sample's gap.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

# q * n computed in floating point can land a hair above an integer (0.3 * 10);
# without this the nearest rank would skip one sample.
_RANK_EPSILON = 1e-9


def nearest_rank(q: float, count: int) -> int:
    """Index into `count` sorted values of the q-percentile."""
    if not 0 < q <= 1:
        raise ValueError(f"percentile must be in (0, 1], got {q}")
    if count <= 0:
        raise ValueError("no samples")
    return min(count - 1, max(0, math.ceil(q * count - _RANK_EPSILON) - 1))


def percentile_sorted(values: Sequence[float], q: float) -> float:
    """The q-percentile of values already sorted ascending (at least one)."""
    return values[nearest_rank(q, len(values))]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-percentile (q in (0, 1]) of any values; None when there are none."""
    ordered = sorted(values)
    return percentile_sorted(ordered, q) if ordered else None
