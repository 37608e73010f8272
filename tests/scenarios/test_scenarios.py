"""The scenario harness and the measures scenarios are judged by (short runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from proxy.admission import Listener
from proxy.errors import ShedReason
from proxy.limiter import Priority
from proxy.load.arrivals import Load
from proxy.scenarios import harness
from proxy.scenarios.cli import SCENARIOS, _parse_overrides, configure
from proxy.scenarios.harness import Fault, Harness, RequestRecord, RunConfig, RunResult
from proxy.scenarios.metrics import (
    Span,
    first_within,
    goodput,
    jain,
    limit_series,
    peak_to_peak,
    settled_within,
)
from proxy.scenarios.vtime import run_virtual
from proxy.settings import Settings
from proxy.sim.profiles import get_profile
from tests.helpers.settings import make_settings

PROFILE = get_profile("h100-llama3-8b")
OVERLOAD = 110.0  # req/s: about twice what this profile serves at the SLA below
SLA = {"sla_ttft": 0.5, "sla_tpot": 0.025, "queue_timeout": 0.25}


def settings(**values: object) -> Settings:
    return make_settings(**{**SLA, **values})


class Counts(Listener):
    def __init__(self) -> None:
        self.arrivals = self.shed_ = 0

    def arrived(self, priority: Priority) -> None:
        self.arrivals += 1

    def shed(self, priority: Priority, reason: ShedReason) -> None:
        self.shed_ += 1


class CheckedHarness(Harness):
    """Notes, at every moment a request is sent upstream, each replica's in-flight
    count and limit: the invariant is checked where it could break."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.at_send: list[tuple[int, int]] = []
        self.counts = [Counts() for _ in self.replicas]
        for replica, counts in zip(self.replicas, self.counts, strict=True):
            replica.admission.subscribe(counts)

    async def _generate(self, record: RequestRecord, *args: Any) -> None:
        for replica in self.replicas:
            self.at_send.append((replica.limiter.inflight, replica.limiter.limit))
        await super()._generate(record, *args)


def checked_run(config: RunConfig) -> tuple[RunResult, CheckedHarness]:
    async def main() -> tuple[RunResult, CheckedHarness]:
        h = CheckedHarness(config)
        return await h.run(), h

    return run_virtual(main())


@pytest.fixture(scope="module")
def overload() -> tuple[RunResult, CheckedHarness]:
    """30 simulated seconds at 2x capacity, starting from a limit far too high."""
    load = Load(((0.0, OVERLOAD),), 30.0)
    return checked_run(RunConfig(PROFILE, load, settings(initial_limit=256), seed=1, drain=30.0))


def test_admission_keeps_inflight_within_the_limit(
    overload: tuple[RunResult, CheckedHarness],
) -> None:
    _, h = overload
    assert h.at_send, "nothing was admitted"
    assert all(inflight <= limit for inflight, limit in h.at_send)


def test_every_permit_is_returned_at_the_end(overload: tuple[RunResult, CheckedHarness]) -> None:
    _, h = overload
    assert [(r.limiter.inflight, r.limiter.queued) for r in h.replicas] == [(0, 0)]


def test_requests_are_conserved(overload: tuple[RunResult, CheckedHarness]) -> None:
    result, h = overload
    arrivals = list(result.config.load.arrivals(result.config.seed))
    served = sum(r.finished for r in result.requests)
    shed = sum(r.shed for r in result.requests)
    assert len(result.requests) == len(arrivals)
    assert served + shed + result.unfinished == len(arrivals)
    counts = h.counts[0]
    assert (counts.arrivals, counts.shed_) == (len(arrivals), shed)


def test_step_overload_brings_a_high_limit_down(
    overload: tuple[RunResult, CheckedHarness],
) -> None:
    result, _ = overload
    series = limit_series(result.ticks)
    assert series[0][1] <= 256
    assert series[-1][1] < 0.85 * 256


def test_no_proxy_sends_every_request_to_the_engine() -> None:
    load = Load(((0.0, 20.0),), 5.0)
    result = harness.run(RunConfig(PROFILE, load, None, seed=2))
    assert result.requests and not result.ticks
    assert all(r.finished and not r.shed and r.queued == 0 for r in result.requests)
    assert len(result.requests) == len(list(load.arrivals(2)))


def test_replicas_split_arrivals_and_each_admits_within_its_limit() -> None:
    load = Load(((0.0, OVERLOAD),), 10.0)
    result, h = checked_run(RunConfig(PROFILE, load, settings(), replicas=3, seed=3))
    assert {r.replica for r in result.requests} == {0, 1, 2}
    assert all(inflight <= limit for inflight, limit in h.at_send)
    assert sum(c.arrivals for c in h.counts) == len(result.requests)


def test_slowdown_fault_applies_from_its_time() -> None:
    load = Load(((0.0, 10.0),), 6.0)
    faults = (Fault(3.0, 2.0),)
    result = harness.run(RunConfig(PROFILE, load, None, faults=faults, seed=4))
    assert [e.slowdown for e in result.engine if e.t < 3.0] == [1.0, 1.0]
    assert {e.slowdown for e in result.engine if e.t >= 3.0} == {2.0}


def test_runs_are_reproducible_for_a_seed() -> None:
    load = Load(((0.0, 40.0),), 4.0)
    config = RunConfig(PROFILE, load, settings(), seed=5)
    first, second = harness.run(config), harness.run(config)
    assert [(r.arrival, r.e2e, r.shed) for r in first.requests] == [
        (r.arrival, r.e2e, r.shed) for r in second.requests
    ]


def test_arrivals_follow_the_rate_steps() -> None:
    load = Load(((0.0, 10.0), (100.0, 100.0)), 200.0)
    arrivals = list(load.arrivals(seed=6))
    before = sum(a.at < 100 for a in arrivals)
    after = len(arrivals) - before
    assert 800 <= before <= 1200  # Poisson(1000): far outside 6 sigma otherwise
    assert 9400 <= after <= 10600


def test_goodput_counts_the_queue_wait_against_ttft() -> None:
    fast = RequestRecord(1.0, 0, 100, queued=0.0, sent=1.0, ttft=0.2, e2e=1.0, output_tokens=41)
    waited = RequestRecord(2.0, 0, 100, queued=0.4, sent=2.4, ttft=0.2, e2e=1.0, output_tokens=41)
    shed = RequestRecord(3.0, 0, 100, shed=True)
    targets = {"ttft": 0.5, "tpot": 0.025}
    assert goodput([fast, waited, shed], targets, Span(0.0, 10.0)) == pytest.approx(0.1)


def test_jain_index_is_one_when_equal_and_one_over_n_when_one_takes_all() -> None:
    assert jain([5.0, 5.0, 5.0]) == pytest.approx(1.0)
    assert jain([9.0, 0.0, 0.0]) == pytest.approx(1 / 3)


def test_convergence_measures_first_entry_and_settling() -> None:
    series = [(0.0, 8.0), (10.0, 90.0), (20.0, 130.0), (30.0, 100.0), (40.0, 98.0)]
    assert first_within(series, 100.0, 0.15) == 10.0
    assert settled_within(series, 100.0, 0.15) == 30.0
    swing, mean = peak_to_peak(series, Span(30.0, 50.0))
    assert swing == pytest.approx(2 / 99) and mean == pytest.approx(99.0)


def test_cli_knows_every_scenario_and_rejects_unknown_settings() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["all", "--out", "x", "--set", "increase_step=4"])
    assert (args.name, args.out, args.overrides) == ("all", Path("x"), ["increase_step=4"])
    assert set(SCENARIOS) == {
        "step-overload",
        "convergence",
        "capacity-change",
        "replicas",
        "mixed-lengths",
        "pool-heterogeneous",
        "pool-member-dies",
        "pool-member-added",
    }
    assert _parse_overrides(["backoff=0.8"]) == {"backoff": "0.8"}
    with pytest.raises(ValueError):
        _parse_overrides(["no_such_setting=1"])
