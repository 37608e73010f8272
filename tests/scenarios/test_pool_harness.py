"""The harness with a pool of engines (short runs): the server's `Pool` in front of
them, members within their limits at every send, errors only where an engine died,
engines found by DNS when they appear."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.load.arrivals import Load
from proxy.pool import Member
from proxy.scenarios.context import CAPACITY_AT_SLA, Context
from proxy.scenarios.harness import Harness, PoolEngine, RunConfig, RunResult
from proxy.scenarios.pools import SCENARIOS
from proxy.scenarios.vtime import run_virtual
from proxy.sim.profiles import get_profile
from tests.helpers.settings import make_settings

H100, SPARK = get_profile("h100-llama3-8b"), get_profile("dgx-spark-llama3-8b")
SLA = {"sla_ttft": 1.0, "sla_tpot": 0.1}


class PoolChecked(Harness):
    """The chosen member's in-flight count and limit whenever the pool's queue hands
    out a permit: the invariant is checked where it could break."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.at_grant: list[tuple[int, int]] = []
        pool = self.pool
        assert pool is not None
        select = pool.select

        def checked_select() -> Member | None:
            member = select()
            if member is not None:
                self.at_grant.append((member.limiter.inflight, member.limiter.limit))
            return member

        pool.select = checked_select  # type: ignore[method-assign]


def checked(config: RunConfig) -> tuple[RunResult, PoolChecked]:
    async def main() -> tuple[RunResult, PoolChecked]:
        h = PoolChecked(config)
        return await h.run(), h

    return run_virtual(main())


@pytest.fixture(scope="module")
def mixed() -> tuple[RunResult, PoolChecked]:
    load = Load(((0.0, 90.0),), 20.0)
    settings = make_settings(**SLA, initial_limit=8)
    config = RunConfig(H100, load, settings, seed=2, pool=(PoolEngine(H100), PoolEngine(SPARK)))
    return checked(config)


def test_both_engines_serve_and_every_permit_comes_back(
    mixed: tuple[RunResult, PoolChecked],
) -> None:
    result, h = mixed
    served = {r.engine for r in result.requests if r.finished}
    assert served == {0, 1}
    assert h.pool is not None and h.pool.inflight == 0
    assert all(m.limiter.inflight == 0 for m in h.pool.members)
    # Every request is accounted for exactly once.
    assert all(r.finished + r.shed + r.failed == 1 for r in result.requests)


def test_a_permit_only_ever_goes_to_a_member_with_room(
    mixed: tuple[RunResult, PoolChecked],
) -> None:
    _, h = mixed
    assert len(h.at_grant) > 100
    assert all(inflight < limit for inflight, limit in h.at_grant)


def test_the_faster_engine_ends_with_the_higher_limit(
    mixed: tuple[RunResult, PoolChecked],
) -> None:
    _, h = mixed
    assert h.pool is not None
    fast, slow = h.pool.members
    assert fast.limiter.limit > slow.limiter.limit


def test_a_dead_engine_costs_only_its_own_requests_and_leaves_rotation() -> None:
    load = Load(((0.0, 40.0),), 20.0)
    settings = make_settings(sla_ttft=0.5, sla_tpot=0.025)
    pool = (PoolEngine(H100), PoolEngine(H100, dies=10.0))
    result, h = checked(RunConfig(H100, load, settings, seed=3, pool=pool))
    failed = [r for r in result.requests if r.failed]
    assert failed and all(r.engine == 1 and (r.sent or 99.0) < 10.0 for r in failed)
    assert [(index, reason) for _, index, reason in result.ejections] == [(1, "connect")]
    assert max(t for t, index in result.dispatches if index == 1) < 10.0 + 1.0
    assert h.pool is not None and not h.pool.members[1].up


def test_an_engine_that_appears_in_dns_joins_on_the_next_look_up() -> None:
    load = Load(((0.0, 40.0),), 20.0)
    settings = make_settings(sla_ttft=0.5, sla_tpot=0.025, resolve_interval=2.0)
    pool = (PoolEngine(H100), PoolEngine(H100, joins=7.0))
    result, _ = checked(RunConfig(H100, load, settings, seed=4, pool=pool))
    joined = dict((index, t) for t, index in result.joins)
    assert joined[0] == pytest.approx(0.0) and joined[1] == pytest.approx(8.0)
    assert min(t for t, index in result.dispatches if index == 1) >= 8.0


def test_engines_that_join_later_need_discovery() -> None:
    with pytest.raises(ValueError, match="resolve interval"):
        RunConfig(
            H100,
            Load(((0.0, 1.0),), 1.0),
            make_settings(),
            pool=(PoolEngine(H100), PoolEngine(H100, joins=1.0)),
        )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_pool_scenario_reports_its_goals_on_a_short_run(name: str, tmp_path: Path) -> None:
    ctx = Context(H100, CAPACITY_AT_SLA[H100.name], {}, tmp_path, scale=0.1)
    report = SCENARIOS[name](ctx)
    report.write(tmp_path)
    assert report.name == name and len(report.checks) >= 3
    assert (tmp_path / f"{name}.md").read_text().startswith(f"### {name}")
