"""What one forwarded request produced, and how it counts for the controller."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"  # counts as a latency sample
    OVERLOAD = "overload"  # upstream said or showed it is overloaded: back off
    IGNORED = "ignored"  # client's doing (4xx, disconnect): says nothing about load


class UpstreamErrorKind(StrEnum):
    CONNECT = "connect"
    TIMEOUT = "timeout"
    STREAM_CUT = "stream_cut"
    STATUS_429 = "status_429"
    STATUS_5XX = "status_5xx"


def status_error(status: int) -> UpstreamErrorKind | None:
    """The upstream answered, but with a status that says it is overloaded."""
    if status == 429:
        return UpstreamErrorKind.STATUS_429
    if status >= 500:
        return UpstreamErrorKind.STATUS_5XX
    return None


def classify(
    status: int | None, error: UpstreamErrorKind | None, client_gone: bool
) -> tuple[Outcome, UpstreamErrorKind | None]:
    """The outcome and the upstream error it rests on, if any. Overload beats
    everything: an upstream that failed us is evidence of load even if the client
    also left. Then a client that left, or a 4xx, is ignored."""
    kind = error if error is not None else (status_error(status) if status else None)
    if kind is not None:
        return Outcome.OVERLOAD, kind
    if client_gone or status is None or status >= 400:
        return Outcome.IGNORED, None
    return Outcome.SUCCESS, None


@dataclass(frozen=True, slots=True)
class Sample:
    """Timings in seconds from the moment the request was sent upstream."""

    outcome: Outcome
    status: int | None
    e2e: float
    ttft: float | None = None  # first content event of a streamed answer
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    epoch: int = 0  # the limiter epoch the request was admitted under
    streamed: bool = False
    error: UpstreamErrorKind | None = None
    client_left: bool = False  # the client went away before the answer was complete

    @property
    def tpot(self) -> float | None:
        """(e2e - ttft) / (tokens - 1): decode time per token after the first."""
        if self.ttft is None or self.output_tokens is None or self.output_tokens < 2:
            return None
        return max(0.0, self.e2e - self.ttft) / (self.output_tokens - 1)

    def signal(self, name: str) -> float | None:
        """The sample's value for a controller signal. A non-streamed answer arrives in
        one piece, so its first byte is its last: it says nothing about TTFT or TPOT and
        feeds only E2E (else it would fill the TTFT window with whole-answer times)."""
        if name == "ttft":
            return self.ttft if self.streamed else None
        if name == "tpot":
            return self.tpot if self.streamed else None
        if name == "e2e":
            return self.e2e
        raise KeyError(name)

    def values(self) -> dict[str, float | None]:
        return {"ttft": self.signal("ttft"), "tpot": self.signal("tpot"), "e2e": self.e2e}


class Flight:
    """A request in flight, as far as the control loop knows it (times on its clock)."""

    __slots__ = ("epoch", "first_at", "sent", "streamed")

    def __init__(self, sent: float, epoch: int, streamed: bool) -> None:
        self.sent = sent
        self.epoch = epoch
        self.streamed = streamed
        self.first_at: float | None = None  # its first content event
