"""AIMD on statistical evidence against the stated SLA.

Each decision reads the findings of `proxy.core.evidence` for every targeted signal
(only requests admitted under the current limit count):

- any signal conclusively OVER, or upstream failures conclusively over their
  threshold: decrease, once, sized to the evidence. Under the same proportional
  model that justifies growth, the limit at which the signal's quantile would meet
  its target is limit x target / quantile; the cut is that, at least `backoff`
  (a marginal breach still moves the limit) and at most halving (the quantile may
  be a censored lower bound, or one burst); the share of requests still waiting past
  the target bounds it too (`evidence.examine`). A breach right after a growth goes
  back to the concurrency that growth was measured at (every signal was under
  target there, so the knee lies between), at most halving;
- otherwise, while a decrease has not taken effect (more in flight than the new
  limit: the engine still holds the old limit's requests), hold: dead time;
- otherwise, when the limit is used and every signal is conclusively UNDER with a
  headroom g (its quantile at most target / g), grow halfway to where a latency that
  rises linearly with concurrency from the signal's floor (its fastest value ever:
  what a request costs alone) would meet the target: x (1 + (h - 1) / 2) with
  h = (target - floor) / (target / g - floor), at most doubling, at least the
  additive step. Halfway, because near its knee an engine's latency curve bends
  upwards (the prefill budget and the KV cache saturate): the slope ahead is steeper
  than the slope behind, and a full step would overshoot. The growth applies to the
  concurrency that ran (a lull's latency says nothing about a limit it did not
  use), and only when the headroom proves room past the limit: near its
  target the limit holds rather than probe on no evidence. After a breach the
  concurrency that breached is a ceiling: free growth up to backoff x it (or from
  where the last growth was measured), probing from there (`_below_ceiling`);
- a breach that halving does not relieve is a latency floor: hold the better of the
  two limits for a while (cause FLOOR);
- otherwise hold: idle, or the evidence is not conclusive yet.

So a slow engine decides after a handful of requests when it is far from its
target, a fast one takes thousands of requests near it, and one breach gives one
cut: the evidence after it is gathered afresh, under the new limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from proxy.core.controller import Cause, Decision, Observation, Policy
from proxy.core.evidence import Finding, Kind, binomial_sf, examine
from proxy.core.evidence import percentile_label as label_of

# However far over its target a signal is, one decision at most halves the limit; and
# however far under, it at most doubles it (TCP slow start's step: the most a limit
# grows without the larger batch ever having been measured).
MAX_CUT = 0.5
MAX_GROWTH = 2.0
# One failed request is noise (a restart, one bad connection); three in the same
# fresh evidence, and a rate conclusively over the threshold, are a pattern.
MIN_OVERLOAD_EVENTS = 3

Details = dict[str, float | int | str | None]
_EPSILON = 1e-9  # 100 x 0.3 / 0.4 is 74.99999999999999: not a reason to cut one more


def _slow_start(finding: Finding) -> Finding:
    if finding.kind is Kind.OVER or finding.estimate <= max(1.0, finding.factor):
        return finding
    return replace(finding, kind=Kind.UNDER, factor=finding.estimate, how="estimate")


class AIMDController:
    def __init__(
        self, policy: Policy | None = None, *, increase_step: int = 1, backoff: float = 0.9
    ) -> None:
        if not 0.5 <= backoff < 1:
            raise ValueError("backoff must be in [0.5, 1)")
        if increase_step < 1:
            raise ValueError("increase_step must be >= 1")
        self.policy = policy or Policy()
        self.increase_step, self.backoff = increase_step, backoff
        # The limit at the last decrease: the knee is near it. Below `backoff` of it the
        # limit may grow multiplicatively, as the evidence allows, but not past that
        # point in one step; from there on it probes additively (TCP's slow-start
        # threshold). Evidence of twice the headroom near it means the engine got
        # faster: the ceiling is forgotten.
        self.ceiling: int | None = None
        # Where the probing starts (None: backoff x the ceiling), and the concurrency at
        # which every signal was last seen under target (the last growth's, or a hold's
        # for want of room).
        self.near: int | None = None
        self.proven: int | None = None
        # The breach episode (its decreases so far), and until when a verdict that it
        # does not depend on concurrency holds the limit (then: hold, do not cut).
        self.episode: _Episode | None = None
        self.floor_until: float | None = None
        self.label = label_of(self.policy.percentile)

    def decide(self, obs: Observation) -> Decision:
        policy = self.policy
        limit = policy.clamp(obs.limit)
        findings = {
            name: examine(ev, policy.percentile, policy.confidence, policy.min_samples)
            for name, ev in obs.signals.items()
        }
        details = self._details(obs, findings)
        if obs.inflight > limit:
            text = f"{obs.inflight} in flight above the limit {limit}: waiting for it to drain"
            return Decision(limit, Cause.DEAD_TIME, text, details)
        over = {name: f for name, f in findings.items() if f.kind is Kind.OVER}
        overloaded = self._overloaded(obs)
        if self.floor_until is not None and obs.now >= self.floor_until:
            # The verdict was made under the engine of its time; test it again.
            self.episode, self.floor_until = None, None
        if over and self.floor_until is not None:
            seen = "; ".join(self._describe(obs, n, f) for n, f in over.items())
            text = f"{seen}, and fewer requests did not help: holding at {limit}"
            return Decision(limit, Cause.FLOOR, text, details)
        if over or overloaded:
            return self._decrease(obs, limit, over, overloaded, details)
        if not (obs.queued > 0 or obs.peak_inflight >= policy.utilization_threshold * limit):
            text = (
                f"peak inflight {obs.peak_inflight} < {policy.utilization_threshold:.0%} of limit "
                f"{limit} and nothing queued: holding"
            )
            return Decision(limit, Cause.IDLE, text, details)
        if findings and self.ceiling is None:
            # Slow start (no breach seen yet): act on the point estimate as TCP's slow
            # start acts on an acknowledgement, without waiting for proof. The first
            # breach ends it; from then on only conclusive evidence grows the limit.
            findings = {n: _slow_start(f) for n, f in findings.items()}
        if findings:
            waiting = [name for name, f in findings.items() if f.kind is not Kind.UNDER]
            if waiting:
                seen = "; ".join(self._describe(obs, n, findings[n]) for n in waiting)
                return Decision(limit, Cause.INCONCLUSIVE, f"{seen}: holding at {limit}", details)
            headroom = min(
                obs.signals[n].concurrency_headroom(f.factor) for n, f in findings.items()
            )
            growth = min(MAX_GROWTH, 1.0 + (headroom - 1.0) / 2.0)
            binding = obs.queued > 0 or obs.peak_inflight >= limit
            growth = self._below_ceiling(limit, growth, headroom, binding)
            seen = "; ".join(self._describe(obs, n, f) for n, f in findings.items())
        elif obs.completed >= policy.min_samples:  # no target measured: only failures limit
            growth = headroom = MAX_GROWTH
            seen = f"no SLA signal to judge, no overload in {obs.completed} fresh outcomes"
        else:
            text = f"{obs.completed} fresh outcomes, too few to judge: holding at {limit}"
            return Decision(limit, Cause.INCONCLUSIVE, text, details)
        # The evidence was measured at the concurrency that ran, not at the limit: a
        # lull's latency says nothing about a limit above what it used. So growth is
        # applied to that concurrency, and only when it proves room past the limit:
        # under the proportional model a limit L needs a headroom of L / (what ran).
        ran = limit if obs.queued else min(limit, max(obs.inflight, obs.peak_inflight))
        self.proven = ran
        if findings and headroom * ran <= limit:
            text = f"{seen}: measured at {ran} in flight, no room proven past {limit}"
            return Decision(limit, Cause.HEADROOM, text, details)
        details["growth_factor"] = round(growth, 4)
        self.episode, self.floor_until = None, None  # every signal under target: breach over
        new = min(
            policy.max_limit,
            max(limit + self.increase_step, math.floor(ran * growth + _EPSILON)),
        )
        if new <= limit:
            return Decision(limit, Cause.HEADROOM, f"{seen}: at the ceiling {limit}", details)
        return Decision(new, Cause.HEADROOM, f"{seen}: {limit} -> {new}", details)

    def _below_ceiling(self, limit: int, growth: float, headroom: float, binding: bool) -> float:
        ceiling = self.ceiling
        if ceiling is None:
            return growth
        near = self.backoff * ceiling if self.near is None else self.near
        # From backoff x the old knee up to it, the limit probes by what the evidence
        # proves, by at most 1 / backoff per decision (the ratio of a marginal cut, so
        # one breach undoes one probe), and at most halfway to the knee: the knee is
        # where a breach was seen, so it is approached, not jumped to again. Past the
        # knee only strong evidence (twice the headroom) says it moved up (a faster
        # engine, shorter answers), and even then the limit probes by 1 / backoff:
        # latency can jump at a cliff the linear model cannot see (the engine's own
        # max_num_seqs), and what overshoots it waits inside the engine. Otherwise, and
        # on evidence from a lull below the limit rather than from the limit itself
        # (it bound: requests queued, or all of it in use), it steps additively.
        if limit >= near:
            if not binding:
                return 1.0
            if limit < ceiling:
                return min(growth, 1.0 / self.backoff, (limit + ceiling) / (2.0 * limit))
            return min(growth, 1.0 / self.backoff) if headroom >= 2.0 else 1.0
        return min(growth, max(1.0, near / limit))

    def _decrease(
        self,
        obs: Observation,
        limit: int,
        over: dict[str, Finding],
        overloaded: bool,
        details: Details,
    ) -> Decision:
        policy = self.policy
        if over:
            factor = min(f.factor for f in over.values())
            cause = Cause.SLA_BREACH
            seen = "; ".join(self._describe(obs, n, f) for n, f in over.items())
        else:
            factor = self.backoff
            cause = Cause.OVERLOAD
            seen = (
                f"{obs.overloaded} of {obs.completed} fresh outcomes overloaded "
                f"(> {policy.overload_threshold:.0%})"
            )
        factor = max(MAX_CUT, min(self.backoff, factor))
        details["backoff_factor"] = round(factor, 4)
        # Cut from the concurrency that breached: a limit far above what ran is no
        # information, and cutting it alone would leave the engine where it is.
        base = min(limit, max(obs.inflight, obs.peak_inflight))
        if over:
            quantiles = {n: f.quantile or 0.0 for n, f in over.items()}
            if self.episode is None:
                self.episode = _Episode(obs.now, base, obs.good_rate)
            elif self.episode.unresponsive(limit, quantiles):
                # Halving the limit did not lower the latency below any level seen in
                # this episode: the engine is slow at any concurrency (a throttled GPU,
                # a latency floor over the target), so no limit meets the SLA. Serve the
                # most requests that still meet it: keep whichever of the two limits
                # served more of them, and hold there. The verdict expires after nine
                # times the episode's length, so re-testing it costs at most a tenth of
                # the time (an engine that changed since is then seen as it is now).
                episode = self.episode
                if obs.completed < policy.min_samples:
                    # Which limit serves more is a rate not measured yet here: the first
                    # outcomes under this limit take a service time to arrive.
                    text = (
                        f"{seen}, as at {episode.start} in flight: holding at {limit} until "
                        f"{policy.min_samples} outcomes here tell which limit serves more"
                    )
                    return Decision(limit, Cause.INCONCLUSIVE, text, details)
                self.floor_until = obs.now + 9.0 * max(obs.now - episode.began, 1.0)
                keep = episode.start if episode.rate > obs.good_rate else limit
                text = (
                    f"{seen}, as at {episode.start} in flight: the latency floor is over "
                    f"target ({obs.good_rate:.2f}/s within it here, {episode.rate:.2f}/s "
                    f"at {episode.start})"
                )
                return Decision(keep, Cause.FLOOR, f"{text}: {limit} -> {keep}", details)
            self.episode.cuts.append(quantiles)
        new = math.floor(base * factor + _EPSILON)
        self.ceiling, self.near = base, None
        if self.proven is not None and self.proven < new:
            # The breach came after a growth from `proven`, where every signal was under
            # target: the knee lies between, so the cut goes back there (at most
            # halving), as TCP's slow start halves on a loss to the last window that
            # went through, and the way up from there is probed, not taken freely.
            new = self.near = max(self.proven, math.floor(base * MAX_CUT + _EPSILON))
        self.proven = None
        new = max(policy.min_limit, min(limit - 1, new))
        if new >= limit:
            return Decision(limit, cause, f"{seen}: limit at its floor {limit}", details)
        return Decision(new, cause, f"{seen}: {limit} -> {new}", details)

    def _overloaded(self, obs: Observation) -> bool:
        policy = self.policy
        return obs.overloaded >= MIN_OVERLOAD_EVENTS and (
            binomial_sf(obs.overloaded, obs.completed, policy.overload_threshold)
            <= 1.0 - policy.confidence
        )

    def _describe(self, obs: Observation, name: str, finding: Finding) -> str:
        return finding.describe(name, obs.signals[name].target, self.label)

    def _details(self, obs: Observation, findings: dict[str, Finding]) -> Details:
        details: Details = {
            "inflight": obs.inflight,
            "peak_inflight": obs.peak_inflight,
            "queued": obs.queued,
            "completed": obs.completed,
            "overloaded": obs.overloaded,
        }
        for name, f in findings.items():
            details[f"{name}_finding"] = f.kind.value
            details[f"{name}_{self.label}"] = f.quantile
            details[f"{name}_misses"] = f.misses
            details[f"{name}_count"] = f.count
        return details


@dataclass
class _Episode:
    """A breach episode: when and at what concurrency it began, the good rate then, and
    the quantiles each of its decreases saw."""

    began: float
    start: int
    rate: float
    cuts: list[dict[str, float]] = field(default_factory=list)

    def unresponsive(self, limit: int, quantiles: dict[str, float]) -> bool:
        """At most half the concurrency the episode began at, and every signal's
        quantile still within a tenth of what each decrease saw (the proportional model
        expects it halved; an engine with a large fixed part still shows a clear drop).
        Every decrease, not just the first: an engine that slowed down mid-episode
        shows a higher latency at its later decreases, and relief relative to those is
        relief."""
        return limit <= self.start // 2 and all(
            q >= 0.9 * cut.get(name, math.inf) for cut in self.cuts for name, q in quantiles.items()
        )
