"""A pool of upstream members behind one admission queue (level 1, no HTTP).

    async with pool.acquire(priority, timeout, streamed=True) as lease:
        lease.member           # where to send it (most headroom)
        lease.ticket           # its member's ticket: progress and outcome, as for one upstream
        lease.fail_over(...)   # a connect failure, nothing sent: once more on another member

Each member has its own limiter (no queue), control loop, controller and windows
(`factory.member`): capacity differs per replica. The pool's one queue is a `Limiter`
in front of them whose limit is kept at the requests running on every member plus the
free permits of the members in rotation (`core.dispatch.pool_limit`), so the queue
hands out a permit exactly when some member has room, with the priorities, deadlines
and shedding answers of a single upstream; the permit then goes to the member with the
most relative headroom (`core.dispatch.choose`). Health is `core.ejection` per member,
probes and DNS are injected coroutines (`probe_forever`, `resolve_forever`), so the
server and the scenario harness run the same pool.

A single static upstream is the degenerate pool: its member's own limiter, with the
configured queue, is the queue, and everything behaves as it did before pools existed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from proxy import factory
from proxy.admission import Admission, Listener, Ticket, enter_told
from proxy.control import Tick
from proxy.core.controller import Cause, Decision, Direction, Observation
from proxy.core.dispatch import Slot, choose, pool_limit
from proxy.core.ejection import Ejection, Event, Reason
from proxy.core.evidence import SignalEvidence
from proxy.core.outcome import Outcome, Sample, UpstreamErrorKind
from proxy.core.resolve import diff, is_address, member_name, member_url
from proxy.core.sla import SIGNALS, Sla, Verdict
from proxy.core.window import WindowSnapshot
from proxy.errors import UpstreamUnavailable
from proxy.limiter import Limiter, Permit, PermitEntry, Priority
from proxy.settings import Settings, UpstreamSpec

log = logging.getLogger("sla_proxy.pool")

NO_MEMBER = "No upstream server can take the request now; retry after the indicated time."
DOWN = "The upstream server is unreachable; retry after the indicated time."

# An address look-up: host, port -> the addresses it resolves to (raises OSError).
Resolver = Callable[[str, int], Awaitable[list[str]]]
# A health probe of one member: True when it answered (as `Member.probe_ok` asks).
Prober = Callable[["Member"], Awaitable[bool]]


class PoolListener:
    """Membership and health events; every hook is a no-op until overridden."""

    def joined(self, member: Member) -> None:
        """A member entered the pool (configured, or found by DNS)."""

    def left(self, member: Member) -> None:
        """A drained member left the pool."""

    def dispatched(self, member: Member) -> None:
        """A request was sent to it."""

    def ejected(self, member: Member, reason: Reason) -> None:
        """It was taken out of rotation."""

    def readmitted(self, member: Member) -> None:
        """A probe brought it back."""


class Member:
    """One upstream replica: its admission objects, health and counters."""

    def __init__(
        self,
        name: str,
        url: str,
        admission: Admission,
        ejection: Ejection,
        *,
        source: str | None = None,
        address: str | None = None,
    ) -> None:
        self.name = name
        self.url = url  # base URL, no trailing slash
        self.admission = admission
        self.limiter = admission.limiter
        self.control = admission.control
        self.ejection = ejection
        self.source = source  # the configured upstream it was resolved from (DNS)
        self.address = address
        self.draining = False  # gone from DNS: finishes what it has, takes nothing new
        self.requests = 0  # dispatched to it
        self.last_ok: float | None = None  # when it last answered

    @property
    def up(self) -> bool:
        return self.ejection.up

    @property
    def serving(self) -> bool:
        return self.ejection.up and not self.draining

    @property
    def slot(self) -> Slot:
        return Slot(self.limiter.limit, self.limiter.inflight, self.serving)

    def probe_ok(self, status: int) -> bool:
        """A probe's answer: any answer, except a 5xx after a burst of them."""
        return status < 500 or self.ejection.reason is not Reason.SERVER_ERRORS


class Lease:
    """One admitted request's place in the pool: the member it goes to and that
    member's ticket. Lives inside `pool.acquire`'s block."""

    __slots__ = ("_held", "_pool", "_streamed", "member", "permit", "ticket")

    def __init__(self, pool: Pool, permit: Permit, member: Member, streamed: bool) -> None:
        self._pool = pool
        self._streamed = streamed
        self.permit = permit  # the pool queue's
        self.member = member
        self._held = not pool.shared
        member_permit = (
            member.limiter.hold(permit.priority, permit.queued_seconds) if self._held else permit
        )
        self.ticket = Ticket(member.admission, member_permit, streamed)
        member.requests += 1
        pool._dispatched(member)

    @property
    def queued_seconds(self) -> float:
        return self.permit.queued_seconds

    def fail_over(
        self, elapsed: float, kind: UpstreamErrorKind = UpstreamErrorKind.CONNECT
    ) -> bool:
        """The member could not be reached and nothing went upstream (its health has
        heard it from the sender): the request moves to the member with the most
        headroom among the others, even one at its limit (the request already holds its
        place in the pool), and the failed member's control loop hears the failure.
        False, and nothing changed, when no other member serves."""
        pool, member = self._pool, self.member
        if pool.shared:
            return False
        target = pool.route(exclude=member)
        if target is None or target is member:
            return False
        self.ticket.retract(
            Sample(
                outcome=Outcome.OVERLOAD,
                status=None,
                e2e=elapsed,
                epoch=self.ticket.epoch,
                streamed=self._streamed,
                error=kind,
            )
        )
        self._release_member()
        self.member = target
        target_permit = target.limiter.hold(self.permit.priority, self.permit.queued_seconds)
        self._held = True
        self.ticket = Ticket(target.admission, target_permit, self._streamed)
        target.requests += 1
        pool._dispatched(target)
        pool.sync()
        return True

    def close(self) -> None:
        self.ticket.close()
        self._release_member()
        self._pool.sync()

    def _release_member(self) -> None:
        if self._held:
            self._held = False
            member = self.member
            member.limiter.unhold()
            if member.draining and member.limiter.inflight == 0:
                self._pool._remove(member)


class _Entry:
    """`async with pool.acquire(...)`: the lease for the block's duration."""

    __slots__ = ("_inner", "_lease", "_pool", "_priority", "_streamed")

    def __init__(self, pool: Pool, priority: Priority, timeout: float, streamed: bool) -> None:
        self._pool = pool
        self._priority = priority
        self._streamed = streamed
        self._inner: PermitEntry = pool.limiter.acquire(priority, timeout)
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        pool = self._pool
        permit = await enter_told(self._inner, self._priority, pool.listeners)
        member = pool.select()
        if member is None:  # every member left rotation while it queued
            await self._inner.__aexit__(None, None, None)
            raise pool.unavailable()
        self._lease = Lease(pool, permit, member, self._streamed)
        return self._lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lease is not None:
            self._lease.close()
        await self._inner.__aexit__(exc_type, exc, tb)


@dataclass(frozen=True, slots=True)
class _Source:
    """A configured upstream that DNS turns into members."""

    spec: UpstreamSpec
    scheme: str
    path: str


class Pool:
    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float],
        specs: tuple[UpstreamSpec, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        specs = settings.upstreams if specs is None else specs
        self.sources = [
            _Source(s, s.url.split("://", 1)[0], _path_of(s.url))
            for s in specs
            if settings.resolve_interval > 0 and not is_address(s.host)
        ]
        static = [s for s in specs if settings.resolve_interval <= 0 or is_address(s.host)]
        self.members: list[Member] = []
        self.pool_listeners: list[PoolListener] = []
        self.shared = len(specs) == 1 and not self.sources
        self._last: Tick | None = None
        self._went_out = asyncio.Event()  # wakes the probe loop
        if self.shared:
            admission, self.alert = factory.admission(settings, clock)
            self.limiter: Limiter = admission.limiter
            self.listeners: list[Listener] = admission.listeners
            self._add(Member(static[0].name, static[0].url, admission, self._ejection()))
        else:
            self.limiter = Limiter(
                max(1, settings.initial_limit * len(static)), settings.queue_size, clock=clock
            )
            self.listeners = []
            self.alert = factory.pool_alert(settings, clock)
            self.listeners.append(self.alert)
            for spec in static:
                self._add(self._member(spec.name, spec.url))
        self.sync()

    # --- membership -------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Admission events of the pool as a whole, and its ticks."""
        self.listeners.append(listener)

    def watch(self, listener: PoolListener) -> None:
        self.pool_listeners.append(listener)
        for member in self.members:
            listener.joined(member)

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def _ejection(self) -> Ejection:
        return Ejection(factory.ejection(self.settings))

    def _member(
        self, name: str, url: str, *, source: str | None = None, address: str | None = None
    ) -> Member:
        admission = factory.member(self.settings, self.clock)
        admission.subscribe(_Finished(self))
        return Member(name, url, admission, self._ejection(), source=source, address=address)

    def _add(self, member: Member) -> None:
        self.members.append(member)
        for listener in self.pool_listeners:
            listener.joined(member)
        log.info("pool member %s joined", member.name)

    def _remove(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)
            for listener in self.pool_listeners:
                listener.left(member)
            log.info("pool member %s drained and left", member.name)

    # --- dispatch ---------------------------------------------------------------
    def acquire(
        self, priority: Priority, timeout: float | None = None, *, streamed: bool = False
    ) -> _Entry:
        """Admission to the pool; the queue deadline as `Admission.acquire` sets it."""
        deadline = self.queue_budget() if timeout is None else timeout
        return _Entry(self, priority, deadline, streamed)

    def queue_budget(self) -> float:
        """The shortest budget of the members in rotation: a request does not know
        which member it will get, and the client's percentile must hold on any."""
        budgets = [m.control.queue_budget for m in self.members if m.serving]
        return min(budgets) if budgets else self.settings.queue_timeout

    def select(self) -> Member | None:
        """The serving member with the most relative headroom that has room."""
        if self.shared:
            return self.members[0]
        index = choose([m.slot for m in self.members])
        return None if index is None else self.members[index]

    def route(self, exclude: Member | None = None) -> Member | None:
        """A member for a request that takes no permit (not a generation): the most
        headroom, at its limit or not."""
        members = self.members
        index = choose(
            [m.slot for m in members],
            exclude=members.index(exclude) if exclude in members else None,
            over_limit=True,
        )
        return None if index is None else members[index]

    @property
    def serving(self) -> bool:
        return any(m.serving for m in self.members)

    def check(self) -> None:
        """Raise 503 while no member can serve."""
        if not self.serving:
            raise self.unavailable()

    def unavailable(self) -> UpstreamUnavailable:
        message = DOWN if self.shared else NO_MEMBER
        return UpstreamUnavailable(message, retry_after=self.settings.upstream_probe_interval)

    def sync(self) -> None:
        """Keep the queue's limit at the pool's room (see the module docstring)."""
        if not self.shared:
            self.limiter.set_limit(max(1, pool_limit([m.slot for m in self.members])))

    def _dispatched(self, member: Member) -> None:
        for listener in self.pool_listeners:
            listener.dispatched(member)

    # --- health -----------------------------------------------------------------
    def record(self, member: Member, event: Event) -> None:
        """One answer (or failure) of a member, for its ejection state."""
        now = self.clock()
        if event is Event.ANSWERED or event is Event.SERVER_ERROR:
            member.last_ok = now
        others = any(m.serving for m in self.members if m is not member)
        reason = member.ejection.record(event, now, others_up=others)
        if reason is not None:
            log.error("upstream %s out of rotation (%s)", member.name, reason.value)
            self._went_out.set()
            for listener in self.pool_listeners:
                listener.ejected(member, reason)
            self.sync()

    def probed(self, member: Member, ok: bool) -> None:
        now = self.clock()
        others = any(m.serving for m in self.members if m is not member)
        if member.ejection.probed(ok, now, others_up=others):
            member.last_ok = now
            log.warning("upstream %s back in rotation", member.name)
            if not self.shared:
                factory.restart(member.admission, self.settings)
            for listener in self.pool_listeners:
                listener.readmitted(member)
            self.sync()

    async def probe_forever(self, probe: Prober, interval: float) -> None:
        """Probe every member out of rotation every `interval` seconds."""
        while True:
            out = [m for m in self.members if not m.up]
            if not out:  # nothing to probe until a member goes out: at once then
                self._went_out.clear()
                await self._went_out.wait()
                continue
            results = await asyncio.gather(*(probe(m) for m in out), return_exceptions=True)
            for member, ok in zip(out, results, strict=True):
                self.probed(member, ok is True)
            if any(not m.up for m in self.members):
                await asyncio.sleep(interval)

    # --- discovery --------------------------------------------------------------
    def resolved(self, source: _Source, addresses: list[str] | None) -> None:
        """One look-up's result for one configured upstream."""
        spec, port = source.spec, source.spec.port
        mine = [m for m in self.members if m.source == spec.name]
        change = diff(
            [m.address for m in mine if not m.draining and m.address],
            [m.address for m in mine if m.draining and m.address],
            addresses,
        )
        for address in change.added:
            name = member_name(spec.name, address, port)
            url = member_url(source.scheme, address, port, source.path)
            self._add(self._member(name, url, source=spec.name, address=address))
        for member in mine:
            if member.address in change.drained:
                member.draining = True
                log.warning("upstream %s gone from DNS: draining", member.name)
                if member.limiter.inflight == 0:
                    self._remove(member)
            elif member.address in change.revived:
                member.draining = False
        self.sync()

    async def resolve_once(self, resolver: Resolver) -> None:
        for source in self.sources:
            try:
                found: list[str] | None = await resolver(source.spec.host, source.spec.port)
            except OSError as exc:
                log.warning("cannot resolve %s: %s", source.spec.host, exc)
                found = None
            self.resolved(source, found)

    async def resolve_forever(self, resolver: Resolver) -> None:
        while True:
            await self.resolve_once(resolver)
            await asyncio.sleep(self.settings.resolve_interval)

    # --- what operators see -----------------------------------------------------
    @property
    def limit(self) -> int:
        """The pool's concurrency limit: the sum of its serving members' limits."""
        if self.shared:
            return self.limiter.limit
        return sum(m.limiter.limit for m in self.members if m.serving)

    @property
    def inflight(self) -> int:
        return self.limiter.inflight

    @property
    def sla(self) -> Sla:
        return self.members[0].control.sla if self.members else factory.sla(self.settings)

    def window_snapshots(self) -> dict[str, WindowSnapshot]:
        """The recent samples of every member together (the clients' view)."""
        if self.shared:
            return self.members[0].control.window_snapshots()
        merged: dict[str, list[float]] = {name: [] for name in SIGNALS}
        for member in self.members:
            for name, snap in member.control.window_snapshots().items():
                merged.setdefault(name, []).extend(snap.values)
        return {
            name: WindowSnapshot(tuple(sorted(values)), self.settings.window_min_samples)
            for name, values in merged.items()
        }

    @property
    def last(self) -> Tick | None:
        """The latest decision (a pool's: its members' summed up)."""
        return self.members[0].control.last if self.shared else self._last

    # --- control ----------------------------------------------------------------
    def tick(self) -> Tick:
        """One decision of every member, and the pool's tick (their sum) for the
        pool's listeners (the capacity alert: the pool over capacity)."""
        if self.shared:
            return self.members[0].admission.tick()
        ticks = [(m, m.admission.tick()) for m in list(self.members)]
        self.sync()
        self._last = tick = _pool_tick(self, ticks)
        # The pool's floor: every serving member at its own.
        serving = sum(1 for m in self.members if m.serving)
        self.alert.min_limit = self.settings.min_limit * max(1, serving)
        for listener in self.listeners:
            listener.ticked(tick)
        return tick

    async def run(self) -> None:
        """Decide every control interval until cancelled."""
        if self.shared:
            await self.members[0].admission.run()
            return
        while True:
            await asyncio.sleep(self.settings.control_interval)
            try:
                self.tick()
            except Exception:  # a reporting bug must not stop admission control
                log.exception("pool tick failed")


class _Finished(Listener):
    """A member's finished requests are the pool's."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def finished(self, sample: Sample, verdict: Verdict | None) -> None:
        for listener in self.pool.listeners:
            listener.finished(sample, verdict)


def _pool_tick(pool: Pool, ticks: list[tuple[Member, Tick]]) -> Tick:
    """The members' decisions summed up: the limit is the pool's, the cause the one
    that moved a limit (down first), FLOOR only when every serving member is at it."""
    serving = [(m, t) for m, t in ticks if m.serving]
    observations = [t.observation for _, t in serving]
    signals: dict[str, SignalEvidence] = {}
    percentile = pool.settings.sla_percentile
    for obs in observations:
        for name, evidence in obs.signals.items():
            held = signals.get(name)
            value, old = (
                evidence.quantile(percentile),
                None if held is None else held.quantile(percentile),
            )
            if held is None or (value is not None and (old is None or value > old)):
                signals[name] = evidence
    now = pool.clock()
    observation = Observation(
        now=now,
        limit=sum(o.limit for o in observations),
        inflight=sum(m.limiter.inflight for m, _ in ticks),
        peak_inflight=sum(o.peak_inflight for o in observations),
        queued=pool.limiter.queued,
        signals=signals,
        completed=sum(o.completed for o in observations),
        overloaded=sum(o.overloaded for o in observations),
        good_rate=sum(o.good_rate for o in observations),
    )
    decisions = [t for _, t in serving]
    moved = [t for t in decisions if t.direction is Direction.DOWN] or [
        t for t in decisions if t.direction is Direction.UP
    ]
    if decisions and all(t.decision.cause is Cause.FLOOR for t in decisions):
        cause = Cause.FLOOR
    elif moved:
        cause = Cause(moved[0].decision.cause)
    elif decisions:
        cause = Cause(decisions[0].decision.cause)
    else:
        cause = Cause.IDLE
    reason = (
        "; ".join(f"{m.name}: {t.decision.reason}" for m, t in serving if t.changed)
        or "no member moved its limit"
    )
    decision = Decision(sum(t.decision.limit for t in decisions), cause, reason)
    return Tick(observation, decision, percentile)


def _path_of(url: str) -> str:
    rest = url.split("://", 1)[1]
    slash = rest.find("/")
    return "" if slash < 0 else rest[slash:]


__all__ = ["Lease", "Member", "Pool", "PoolListener", "Prober", "Resolver"]
