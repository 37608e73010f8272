from __future__ import annotations

import pytest

from proxy.core.stats import nearest_rank, percentile


def test_percentile_is_the_smallest_value_with_that_share_at_or_below() -> None:
    values = [4.0, 1.0, 3.0, 2.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert percentile(values, 0.9) == 9.0
    assert percentile(values, 0.91) == 10.0
    assert percentile(values, 0.5) == 5.0
    assert percentile(values, 1.0) == 10.0


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 0.9) is None


def test_rank_survives_floating_point_products() -> None:
    assert nearest_rank(0.3, 10) == 2  # 0.3 * 10 is 3.0000000000000004


@pytest.mark.parametrize("q", [0.0, -0.1, 1.5])
def test_rejects_a_percentile_outside_zero_to_one(q: float) -> None:
    with pytest.raises(ValueError):
        nearest_rank(q, 5)
