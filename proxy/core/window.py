"""Rolling latency windows: percentiles over recent, fresh samples.

A window is bounded twice: by age (`horizon` seconds) and by memory (`max_samples`,
oldest dropped first). Adding is O(1) amortised; percentiles are computed on demand
by sorting the surviving samples, which for a few thousand values once per control
interval is cheap and exact.

Every sample carries the limiter *epoch* it was admitted under. A query with
`min_epoch=E` sees only samples admitted under epoch E or later, so latency
measured under an old limit never argues about the current one.

Percentiles use the nearest-rank definition: the q-percentile is the smallest
sample such that at least a fraction q of the samples are at or below it. With it,
"P90 <= target" holds exactly when "at least 90% of samples meet the target", so the
controller's view and the attainment metric never disagree.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.core.controller import Observation
from proxy.core.outcome import Outcome, Sample
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
        # (completion time, epoch, value); completion times are appended in clock
        # order, so expiry only ever looks at the left end.
        self._samples: deque[tuple[float, int, float]] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, value: float, now: float, epoch: int = 0) -> None:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"latency must be a finite non-negative number, got {value}")
        self._samples.append((now, epoch, value))
        self._expire(now)

    def snapshot(self, now: float, min_epoch: int = 0, min_samples: int = 1) -> WindowSnapshot:
        """Samples younger than the horizon and admitted under `min_epoch` or later."""
        self._expire(now)
        values = sorted(value for _, epoch, value in self._samples if epoch >= min_epoch)
        return WindowSnapshot(tuple(values), min_samples)

    def _expire(self, now: float) -> None:
        oldest_allowed = now - self.horizon
        samples = self._samples
        while samples and samples[0][0] < oldest_allowed:
            samples.popleft()


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    success: int = 0
    overload: int = 0

    @property
    def completed(self) -> int:
        return self.success + self.overload


@dataclass(slots=True)
class _Bucket:
    start: float
    epoch: int
    success: int = 0
    overload: int = 0


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

    def add(self, overloaded: bool, now: float, epoch: int = 0) -> None:
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
        self._expire(now)

    def counts(self, now: float, min_epoch: int = 0) -> OutcomeCounts:
        self._expire(now)
        fresh = [b for b in self._buckets if b.epoch >= min_epoch]
        return OutcomeCounts(sum(b.success for b in fresh), sum(b.overload for b in fresh))

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

    def observe(self, sample: Sample, now: float) -> None:
        """Only successes are latency samples (an overload's latency is the upstream
        failing, not serving); ignored outcomes say nothing about load at all."""
        if sample.outcome is Outcome.IGNORED:
            return
        self.outcomes.add(sample.outcome is Outcome.OVERLOAD, now, sample.epoch)
        if sample.outcome is not Outcome.SUCCESS:
            return
        for name, window in self.windows.items():
            value = sample.signal(name)
            if value is not None:
                window.add(value, now, sample.epoch)

    def snapshot(
        self, signal: str, now: float, min_epoch: int = 0, min_samples: int = 1
    ) -> WindowSnapshot:
        return self.windows[signal].snapshot(now, min_epoch, min_samples)

    def snapshots(
        self, now: float, min_epoch: int = 0, min_samples: int = 1
    ) -> dict[str, WindowSnapshot]:
        return {name: w.snapshot(now, min_epoch, min_samples) for name, w in self.windows.items()}

    def observation(
        self,
        now: float,
        *,
        limit: int,
        peak_inflight: int,
        queued: int,
        targets: Mapping[str, float],
        percentile: float,
        min_samples: int,
        min_epoch: int,
    ) -> Observation:
        """The controller's input, from evidence admitted under `min_epoch` or later.

        A signal whose window is empty over the whole horizon is left out of
        `percentiles` (this traffic does not measure it: TTFT of non-streamed
        answers), unlike a signal with too few fresh samples, which maps to None.
        Controllers hold on None but must not wait forever for a signal nobody sends.
        """
        snaps = self.snapshots(now, min_epoch, min_samples)
        counts = self.outcomes.counts(now, min_epoch)
        return Observation(
            now=now,
            limit=limit,
            peak_inflight=peak_inflight,
            queued=queued,
            percentiles={
                name: snap.percentile(percentile)
                for name, snap in snaps.items()
                if len(self.windows[name]) > 0
            },
            targets=dict(targets),
            completed=counts.completed,
            overloaded=counts.overload,
        )
