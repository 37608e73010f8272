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


def classify(status: int | None, error: UpstreamErrorKind | None, client_gone: bool) -> Outcome:
    """Overload beats everything: an upstream that failed us is evidence of load even
    if the client also left. Then a client that left or a 4xx is ignored."""
    if error is not None:
        return Outcome.OVERLOAD
    if status is not None and (status == 429 or status >= 500):
        return Outcome.OVERLOAD
    if client_gone or status is None or status >= 400:
        return Outcome.IGNORED
    return Outcome.SUCCESS


@dataclass(frozen=True, slots=True)
class Sample:
    """Timings in seconds from the moment the request was sent upstream."""

    outcome: Outcome
    status: int | None
    e2e: float
    ttft: float | None = None  # first content chunk (first byte when not streamed)
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    epoch: int = 0  # the limiter epoch the request was admitted under
    streamed: bool = False
    error: UpstreamErrorKind | None = None

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


SIGNALS = ("ttft", "tpot", "e2e")
