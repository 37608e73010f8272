"""Rolling latency windows: what recent requests measured, per signal.

A window is bounded twice: by age (`horizon` seconds) and by memory (`max_samples`,
oldest dropped first). Adding is O(1) amortised; queries sort the survivors on
demand, which for a few thousand values a few times a second is cheap and exact.

Every sample carries the limiter *epoch* it was admitted under and the moment it was
sent. The controller's evidence (`SignalWindows.evidence`) sees only the current
epoch, so latency measured under an old limit never argues about the current one,
plus the requests of that epoch still in flight (`Flight`), censored where a
target has already passed. Operators' views
(`snapshots`) see every recent sample.

Percentiles use the nearest-rank definition (`proxy.core.stats`): "P90 <= target"
holds exactly when "at least 90% of samples meet the target", so the controller's
view and the attainment metric never disagree.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from proxy.core.evidence import SignalEvidence
from proxy.core.outcome import Flight, Outcome, Sample
from proxy.core.sla import SIGNALS
from proxy.core.stats import nearest_rank


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    """The fresh samples of one window at one moment, sorted ascending."""

    values: tuple[float, ...]
    min_samples: int = 1

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def enough(self) -> bool:
        """False: too few samples to say anything (every query answers None)."""
        return self.count >= max(1, self.min_samples)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank q-percentile (q in (0, 1]); None below `min_samples`."""
        if not self.enough:
            return None
        return self.values[nearest_rank(q, self.count)]

    def within(self, target: float) -> int:
        """How many samples are at or below `target`."""
        return bisect_right(self.values, target)

    def attainment(self, target: float) -> float | None:
        """Fraction of samples at or below `target`; None below `min_samples`."""
        if not self.enough:
            return None
        return self.within(target) / self.count


class LatencyWindow:
    """One signal's samples over the last `horizon` seconds, at most `max_samples`."""

    def __init__(self, horizon: float, max_samples: int) -> None:
        if horizon <= 0:
            raise ValueError("horizon must be positive")
        if max_samples < 1:
            raise ValueError("max_samples must be at least 1")
        self.horizon = horizon
        self.max_samples = max_samples
        # (recorded at, epoch, sent at, value); recording times are appended in clock
        # order, so expiry only ever looks at the left end.
        self._samples: deque[tuple[float, int, float, float]] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, value: float, now: float, epoch: int = 0, sent: float | None = None) -> None:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"latency must be a finite non-negative number, got {value}")
        self._samples.append((now, epoch, now if sent is None else sent, value))
        self._expire(now)

    def snapshot(self, now: float, min_epoch: int = 0, min_samples: int = 1) -> WindowSnapshot:
        """Samples younger than the horizon and admitted under `min_epoch` or later."""
        self._expire(now)
        values = sorted(value for _, epoch, _, value in self._samples if epoch >= min_epoch)
        return WindowSnapshot(tuple(values), min_samples)

    def fresh(self, now: float, epoch: int) -> list[tuple[float, float]]:
        """(seconds since sent, value) of the samples admitted under `epoch` or later."""
        self._expire(now)
        return [(now - sent, value) for _, e, sent, value in self._samples if e >= epoch]

    def _expire(self, now: float) -> None:
        oldest_allowed = now - self.horizon
        samples = self._samples
        while samples and samples[0][0] < oldest_allowed:
            samples.popleft()


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    success: int = 0
    overload: int = 0
    met: int = 0  # of the successes, those within every SLA target
    # Start of the oldest time slot holding one of them: the counts are what arrived
    # over [since, now] (inf: none yet).
    since: float = math.inf

    def rate(self, now: float) -> float:
        """Met outcomes per second over the span they arrived in. Not over the epoch's
        whole age: a young epoch's first outcomes take a service time to arrive, and
        an old one's expire from the horizon, and either would bias it low."""
        return self.met / max(now - self.since, 1e-9) if self.met else 0.0

    @property
    def completed(self) -> int:
        return self.success + self.overload


@dataclass(slots=True)
class _Bucket:
    start: float
    epoch: int
    success: int = 0
    overload: int = 0
    met: int = 0


class OutcomeCounter:
    """Success and overload outcomes per epoch over the last `horizon` seconds.

    Counts live in (time slot, epoch) buckets rather than one entry per request,
    so memory is bounded by the number of slots in the horizon whatever the rate;
    expiry is exact to within one slot (horizon / `slots`).
    """

    def __init__(self, horizon: float, slots: int = 64) -> None:
        if horizon <= 0 or slots < 1:
            raise ValueError("horizon and slots must be positive")
        self.horizon = horizon
        self._width = horizon / slots
        self._buckets: deque[_Bucket] = deque()  # bucket starts never decrease
        self._slot_start = -math.inf
        self._current: dict[int, _Bucket] = {}  # epoch -> bucket of the current slot

    def add(self, overloaded: bool, now: float, epoch: int = 0, met: bool = False) -> None:
        slot_start = math.floor(now / self._width) * self._width
        if slot_start != self._slot_start:
            self._slot_start = slot_start
            self._current = {}
        bucket = self._current.get(epoch)
        if bucket is None:
            bucket = self._current[epoch] = _Bucket(slot_start, epoch)
            self._buckets.append(bucket)
        if overloaded:
            bucket.overload += 1
        else:
            bucket.success += 1
            bucket.met += met
        self._expire(now)

    def counts(self, now: float, min_epoch: int = 0) -> OutcomeCounts:
        self._expire(now)
        fresh = [b for b in self._buckets if b.epoch >= min_epoch]
        return OutcomeCounts(
            sum(b.success for b in fresh),
            sum(b.overload for b in fresh),
            sum(b.met for b in fresh),
            min((b.start for b in fresh), default=math.inf),
        )

    def _expire(self, now: float) -> None:
        oldest_allowed = now - self.horizon
        buckets = self._buckets
        while buckets and buckets[0].start + self._width <= oldest_allowed:
            buckets.popleft()


class SignalWindows:
    """Everything the control loop measures: one window per signal plus outcomes."""

    def __init__(
        self, horizon: float, max_samples: int, signals: tuple[str, ...] = SIGNALS
    ) -> None:
        self.windows = {name: LatencyWindow(horizon, max_samples) for name in signals}
        self.outcomes = OutcomeCounter(horizon)
        self.floors = {name: math.inf for name in signals}  # fastest value ever seen

    def first_token(self, flight: Flight, now: float) -> None:
        """A streamed request's TTFT is known at its first token, not at its end."""
        if "ttft" in self.windows and flight.streamed:
            self._add("ttft", now - flight.sent, now, flight.epoch, flight.sent)

    def observe(
        self, sample: Sample, now: float, flight: Flight | None = None, met: bool = False
    ) -> None:
        """Only successes are latency samples (an overload's latency is the upstream
        failing, not serving); ignored outcomes say nothing about load at all. A TTFT
        already recorded at the first token (`flight.first_at`) is not recorded again."""
        if sample.outcome is Outcome.IGNORED:
            return
        self.outcomes.add(sample.outcome is Outcome.OVERLOAD, now, sample.epoch, met)
        if sample.outcome is not Outcome.SUCCESS:
            return
        sent = flight.sent if flight is not None else now - sample.e2e
        for name in self.windows:
            if name == "ttft" and flight is not None and flight.first_at is not None:
                continue
            value = sample.signal(name)
            if value is not None:
                self._add(name, value, now, sample.epoch, sent)

    def _add(self, name: str, value: float, now: float, epoch: int, sent: float) -> None:
        self.windows[name].add(value, now, epoch, sent)
        if value < self.floors[name]:
            self.floors[name] = value

    def snapshot(
        self, signal: str, now: float, min_epoch: int = 0, min_samples: int = 1
    ) -> WindowSnapshot:
        return self.windows[signal].snapshot(now, min_epoch, min_samples)

    def snapshots(
        self, now: float, min_epoch: int = 0, min_samples: int = 1
    ) -> dict[str, WindowSnapshot]:
        return {name: w.snapshot(now, min_epoch, min_samples) for name, w in self.windows.items()}

    def evidence(
        self,
        now: float,
        epoch: int,
        targets: Mapping[str, float],
        flights: Iterable[Flight],
    ) -> dict[str, SignalEvidence]:
        """Each targeted signal's evidence from requests admitted under `epoch` or later.

        A targeted signal this traffic does not measure at all (no sample over the
        whole horizon and no request in flight that will give one: TTFT of
        non-streamed answers) is left out, so the controller does not wait for it."""
        fresh = [f for f in flights if f.epoch >= epoch]
        streamed = [f for f in fresh if f.streamed]
        out: dict[str, SignalEvidence] = {}
        for name, target in targets.items():
            window = self.windows[name]
            measures = streamed if name in ("ttft", "tpot") else fresh
            if len(window) == 0 and not measures:
                continue
            resolved = window.fresh(now, epoch)
            pending: tuple[float, ...] = ()
            partial: tuple[float, ...] = ()
            if name == "ttft":
                pending = tuple(now - f.sent for f in streamed if f.first_at is None)
            elif name == "e2e":
                pending = tuple(now - f.sent for f in fresh)
            else:  # TPOT is known once a request ends; its tokens so far estimate it
                partial = tuple(t for f in streamed if (t := f.partial_tpot()) is not None)
            floor = self.floors[name] if math.isfinite(self.floors[name]) else 0.0
            out[name] = SignalEvidence(target, tuple(resolved), pending, partial, floor)
        return out

    def outcome_counts(self, now: float, epoch: int) -> OutcomeCounts:
        return self.outcomes.counts(now, epoch)
