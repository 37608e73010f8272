"""What one admitted request's relay saw, turned into its `Sample` (pure: the
forwarder passes every reading of the clock in, as it feeds `SseRelay` its bytes).

Times are from the moment the request went upstream. TTFT is the first content
event of a streamed answer; a non-streamed answer has none (its first byte is its
last). Output tokens come from the upstream's usage report (chat's `completion_tokens` or
the Responses API's `output_tokens`, streamed or not), else, for a stream, from the
number of content events (one token per event is vLLM's default).
"""

from __future__ import annotations

from typing import Any

from proxy.core.outcome import Sample, UpstreamErrorKind, classify
from proxy.server.dialects import usage_tokens


class RequestMeter:
    __slots__ = (
        "client_left",
        "content_events",
        "epoch",
        "error",
        "sent",
        "status",
        "streamed",
        "ttft",
        "usage",
    )

    def __init__(self, sent: float, *, streamed: bool, epoch: int) -> None:
        self.sent = sent
        self.streamed = streamed
        self.epoch = epoch
        self.status: int | None = None
        self.error: UpstreamErrorKind | None = None
        self.ttft: float | None = None
        self.usage: dict[str, Any] | None = None
        self.content_events = 0
        self.client_left = False

    def answered(self, status: int) -> None:
        """The upstream's response headers arrived."""
        self.status = status

    def first_content(self, now: float) -> None:
        if self.ttft is None and self.streamed:
            self.ttft = now - self.sent

    def streamed_events(self, content_events: int, usage: dict[str, Any] | None) -> None:
        """What the SSE relay counted by the end of the stream."""
        self.content_events = content_events
        self.usage = usage

    def failed(self, kind: UpstreamErrorKind) -> None:
        if self.error is None:
            self.error = kind

    def left(self) -> None:
        """The client went away."""
        self.client_left = True

    def sample(self, now: float) -> Sample:
        outcome, kind = classify(self.status, self.error, self.client_left)
        tokens = prompt = None
        if self.usage is not None:
            tokens, prompt = usage_tokens(self.usage)
        elif self.streamed and self.content_events:
            tokens = self.content_events
        return Sample(
            outcome=outcome,
            status=self.status,
            e2e=now - self.sent,
            ttft=self.ttft,
            output_tokens=tokens,
            prompt_tokens=prompt,
            epoch=self.epoch,
            streamed=self.streamed,
            error=kind,
            client_left=self.client_left,
        )
