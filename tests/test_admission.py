"""The admission seam: arrivals, sheds and outcomes reach every listener through
`acquire` and the ticket, and the control loop judges each outcome itself."""

from __future__ import annotations

import asyncio

import pytest

from proxy import factory
from proxy.admission import Admission, Listener
from proxy.control import Tick
from proxy.core.outcome import Outcome, Sample
from proxy.core.sla import Verdict
from proxy.errors import Shed, ShedReason
from proxy.limiter import Priority
from tests.helpers.settings import make_settings
from tests.helpers.vtime import settle, virtual_time


class Recorder(Listener):
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def arrived(self, priority: Priority) -> None:
        self.events.append(("arrived", priority))

    def shed(self, priority: Priority, reason: ShedReason) -> None:
        self.events.append(("shed", priority, reason))

    def admitted(self, priority: Priority, queued: float) -> None:
        self.events.append(("admitted", priority, queued))

    def abandoned(self, priority: Priority) -> None:
        self.events.append(("abandoned", priority))

    def finished(self, sample: Sample, verdict: Verdict | None) -> None:
        self.events.append(("finished", sample.outcome, None if verdict is None else verdict.met))

    def ticked(self, tick: Tick) -> None:
        self.events.append(("ticked", tick.decision.limit))


def build(**settings: object) -> tuple[Admission, Recorder]:
    admission, _ = factory.admission(make_settings(sla_ttft=0.5, **settings))
    recorder = Recorder()
    admission.subscribe(recorder)
    return admission, recorder


def success(ttft: float, epoch: int = 0) -> Sample:
    return Sample(Outcome.SUCCESS, 200, e2e=1.0, ttft=ttft, output_tokens=10, streamed=True)


@virtual_time
async def test_a_served_request_reports_arrival_admission_and_its_verdict() -> None:
    admission, rec = build()
    async with admission.acquire(Priority.HIGH, 1.0) as ticket:
        ticket.report(success(ttft=0.6))
    assert rec.events == [
        ("arrived", Priority.HIGH),
        ("admitted", Priority.HIGH, 0.0),
        ("finished", Outcome.SUCCESS, False),  # 0.6 s > the 0.5 s target
    ]
    assert admission.limiter.inflight == 0


@virtual_time
async def test_only_the_first_report_counts() -> None:
    admission, rec = build()
    async with admission.acquire(Priority.NORMAL, 1.0) as ticket:
        ticket.report(success(ttft=0.1))
        ticket.report(success(ttft=9.0))
    assert [e for e in rec.events if e[0] == "finished"] == [("finished", Outcome.SUCCESS, True)]


@virtual_time
async def test_a_failure_is_reported_without_a_verdict() -> None:
    admission, rec = build()
    async with admission.acquire(Priority.NORMAL, 1.0) as ticket:
        ticket.report(Sample(Outcome.OVERLOAD, 503, e2e=0.1))
    assert rec.events[-1] == ("finished", Outcome.OVERLOAD, None)


@virtual_time
async def test_a_refused_request_is_an_arrival_and_a_shed() -> None:
    admission, rec = build(initial_limit=1, queue_size=0)
    async with admission.acquire(Priority.NORMAL, 1.0):
        with pytest.raises(Shed):
            async with admission.acquire(Priority.LOW, 1.0):
                pass
    assert ("shed", Priority.LOW, ShedReason.QUEUE_FULL) in rec.events
    assert rec.events.count(("arrived", Priority.LOW)) == 1


@virtual_time
async def test_a_client_leaving_the_queue_is_abandoned_and_frees_its_place() -> None:
    admission, rec = build(initial_limit=1, queue_size=4)

    async def waiter() -> None:
        async with admission.acquire(Priority.NORMAL, 5.0):
            pass

    async with admission.acquire(Priority.NORMAL, 1.0):
        task = asyncio.create_task(waiter())
        await settle()
        assert admission.limiter.queued == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ("abandoned", Priority.NORMAL) in rec.events
    assert (admission.limiter.queued, admission.limiter.inflight) == (0, 0)


@virtual_time
async def test_an_exception_inside_the_block_still_releases_the_permit() -> None:
    admission, _ = build(initial_limit=1)
    with pytest.raises(RuntimeError):
        async with admission.acquire(Priority.NORMAL, 1.0):
            raise RuntimeError("forwarding failed")
    assert admission.limiter.inflight == 0


@virtual_time
async def test_ticks_reach_listeners() -> None:
    admission, rec = build(algorithm="fixed", initial_limit=7)
    tick = admission.tick()
    assert rec.events == [("ticked", 7)] and tick.decision.limit == 7
