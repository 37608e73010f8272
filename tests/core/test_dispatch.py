"""Which member a request goes to, and the pool queue's limit."""

from __future__ import annotations

from proxy.core.dispatch import Slot, choose, pool_limit


def test_the_most_relative_headroom_wins_not_the_most_free_permits() -> None:
    # 100 free of 200 (50%) against 6 free of 10 (60%): the small one.
    assert choose([Slot(200, 100), Slot(10, 4)]) == 1
    assert choose([Slot(200, 40), Slot(10, 4)]) == 0


def test_ties_go_to_more_free_permits_then_the_earlier_member() -> None:
    assert choose([Slot(10, 5), Slot(20, 10)]) == 1
    assert choose([Slot(8, 0), Slot(8, 0)]) == 0


def test_full_ejected_and_excluded_members_are_skipped() -> None:
    slots = [Slot(4, 4), Slot(4, 0, serving=False), Slot(4, 3)]
    assert choose(slots) == 2
    assert choose(slots, exclude=2) is None
    assert choose([Slot(4, 4), Slot(2, 5)]) is None


def test_over_limit_takes_the_member_least_over_its_limit() -> None:
    slots = [Slot(4, 6), Slot(10, 11), Slot(4, 0, serving=False)]
    assert choose(slots, over_limit=True) == 1
    assert choose(slots, exclude=1, over_limit=True) == 0
    assert choose([Slot(4, 0, serving=False)], over_limit=True) is None


def test_the_pool_limit_leaves_exactly_the_free_permits_of_serving_members() -> None:
    slots = [Slot(10, 4), Slot(5, 8), Slot(6, 3, serving=False)]
    limit = pool_limit(slots)
    inflight = sum(s.inflight for s in slots)
    assert limit - inflight == 6  # member 0's six; member 1 is over, member 2 out
    assert pool_limit([Slot(3, 3), Slot(2, 2)]) == 5  # all full: no room
