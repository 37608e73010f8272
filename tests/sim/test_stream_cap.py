"""vLLM's stream-interval rule and the simulator's event-rate cap, on a fake clock."""

import math

from proxy.sim.streaming import FIRST_AND_LAST_ONLY, EventCap, due, vllm_events


def test_the_first_token_is_always_due() -> None:
    assert due(output_tokens=1, released=0, finished=False, interval=8)


def test_a_middle_token_is_due_once_interval_tokens_accumulated() -> None:
    assert not due(output_tokens=4, released=1, finished=False, interval=4)
    assert due(output_tokens=5, released=1, finished=False, interval=4)


def test_the_finish_is_due_whatever_accumulated() -> None:
    assert due(output_tokens=6, released=5, finished=True, interval=4)


def test_first_and_last_only_never_makes_a_middle_token_due() -> None:
    assert not due(output_tokens=10**6, released=1, finished=False, interval=FIRST_AND_LAST_ONLY)


def test_vllm_events_counts_whole_intervals_plus_a_partial_finish() -> None:
    assert vllm_events(3, 1, finished=False) == 3
    assert vllm_events(9, 4, finished=False) == 2
    assert vllm_events(9, 4, finished=True) == 3
    assert vllm_events(8, 4, finished=True) == 2
    assert vllm_events(7, math.inf, finished=True) == 1


def test_the_cap_refuses_middle_events_once_the_burst_is_spent() -> None:
    cap = EventCap(rate=10)  # burst 1 event
    cap.refill(0.0)
    assert cap.admit(essential=False)
    assert not cap.admit(essential=False)


def test_the_cap_refills_at_its_rate() -> None:
    cap = EventCap(rate=10)
    cap.refill(0.0)
    cap.admit(essential=False)
    cap.refill(0.05)
    assert not cap.admit(essential=False)
    cap.refill(0.1)
    assert cap.admit(essential=False)


def test_essential_events_go_into_debt_and_hold_back_middle_ones() -> None:
    cap = EventCap(rate=10)
    cap.refill(0.0)
    assert all(cap.admit(essential=True) for _ in range(3))
    cap.refill(0.2)  # two events' worth repays the debt of two
    assert not cap.admit(essential=False)
    assert cap.sent == 3


def test_merging_counts_the_vllm_events_folded_into_one() -> None:
    cap = EventCap()
    cap.merged(5, 1, finished=False)
    cap.merged(4, 4, finished=False)
    assert cap.coalesced == 4
