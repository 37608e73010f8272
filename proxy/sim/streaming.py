"""When a stream's writer gets an event: vLLM's `--stream-interval`, under a CPU cap (pure).

vLLM (v1 `OutputProcessor`, `RequestState.make_request_output`) sends a streamed
request's output when it is the first token, when the request finished, or when at
least `stream_interval` tokens accumulated since the last output; the default interval
is 1, so one SSE event per token. `due` is that rule.

The simulator runs the engine, every writer and often a proxy and a load generator on
two shared cores. Above a few thousand events per wall second the writers would starve
the engine of CPU and slow simulated time down, which is worse than a coarser stream.
So all streams together draw middle events (neither first nor last: those always go
out, so TTFT and end-to-end times stay exact) from one token bucket of `rate` events
per wall second. A middle event the bucket refuses is held back and its tokens go out
with the stream's next event; `coalesced` counts the vLLM events merged that way.
"""

from __future__ import annotations

import math

MAX_EVENT_RATE = 2000.0  # events per wall second, all streams together
BURST_SECONDS = 0.1  # the bucket holds this many seconds of events
FIRST_AND_LAST_ONLY = math.inf  # a stream interval: wake a writer on two tokens only


def due(output_tokens: int, released: int, finished: bool, interval: float) -> bool:
    """vLLM's rule: first token, finished, or `interval` tokens since the last event."""
    return finished or released == 0 or output_tokens - released >= interval


def vllm_events(tokens: int, interval: float, finished: bool) -> int:
    """Events vLLM would have sent for `tokens` tokens that follow an event (pure
    interval arithmetic; the last one also carries the finish)."""
    if math.isinf(interval):
        return 1 if finished else 0
    whole = tokens // int(interval)
    return whole + 1 if finished and tokens % int(interval) else whole


class EventCap:
    """A token bucket of `rate` events per clock second, `rate * BURST_SECONDS` deep."""

    __slots__ = ("_last", "burst", "coalesced", "level", "rate", "sent")

    def __init__(self, rate: float = MAX_EVENT_RATE) -> None:
        if not rate > 0:
            raise ValueError("the event rate cap must be positive")
        self.rate = rate
        self.burst = max(1.0, rate * BURST_SECONDS)
        self.level = self.burst
        self.coalesced = 0  # vLLM events merged into a later event
        self.sent = 0  # events handed to writers
        self._last: float | None = None

    def refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self.level = min(self.burst, self.level + (now - self._last) * self.rate)
        self._last = now if self._last is None else max(self._last, now)

    def admit(self, essential: bool) -> bool:
        """Take one event; an essential one (first, last) always goes, into debt if need
        be, so that a burst of them throttles the middle events that follow."""
        if essential or self.level >= 1.0:
            self.level -= 1.0
            self.sent += 1
            return True
        return False

    def merged(self, tokens: int, interval: float, finished: bool) -> None:
        """`tokens` went out as one event: count the vLLM events folded into it."""
        self.coalesced += max(0, vllm_events(tokens, interval, finished) - 1)
