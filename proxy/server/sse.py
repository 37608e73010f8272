"""Server-sent events relay: split upstream bytes into whole events as they arrive,
find the first content token and the usage report, and drop the usage event the
proxy asked for on the client's behalf.

Pure (no I/O): the forwarder feeds it chunks and writes out what it returns, so a
complete event is never held back waiting for the next one. What an event means
depends on the stream's dialect (chat/completions chunks or Responses events, see
`dialects`), which the first event with data decides.
"""

from __future__ import annotations

from typing import Any

from proxy.server.dialects import ChatDialect, ResponsesDialect, data_of, is_responses

_DELIMITERS = (b"\r\n\r\n", b"\n\n", b"\r\r")


class SseRelay:
    __slots__ = ("_buffer", "_dialect", "_last", "_strip_usage")

    def __init__(self, strip_usage: bool) -> None:
        self._strip_usage = strip_usage
        self._buffer = b""
        self._dialect: ChatDialect | ResponsesDialect | None = None
        self._last = b""  # the last event forwarded (a Responses error continues its numbering)

    @property
    def responses(self) -> bool:
        """Is this a Responses API stream (known from its first event)?"""
        return isinstance(self._dialect, ResponsesDialect)

    @property
    def content_seen(self) -> bool:  # a chunk with generated text went by
        return self._dialect is not None and self._dialect.content_seen

    @property
    def content_events(self) -> int:
        return 0 if self._dialect is None else self._dialect.content_events

    @property
    def usage(self) -> dict[str, Any] | None:
        return None if self._dialect is None else self._dialect.usage

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Returns the bytes to send now, and whether the first content arrived in them.

        One pass over the bytes: events are cut at offsets, the rest kept once at the
        end (never re-sliced per event), and events forwarded unchanged go out as the
        one span they were received in."""
        buffer = self._buffer + data if self._buffer else data
        crlf = b"\r" in buffer  # the common case (vLLM, OpenAI): "\n\n" only, one scan
        pos = 0  # where the next event starts
        sent = 0  # buffer[sent:pos] is unchanged events not yet put in `pieces`
        pieces: list[bytes] = []
        first_content = False
        dialect = self._dialect
        last: bytes | None = None
        while True:
            if dialect is not None and not crlf:
                run = dialect.skim(buffer, pos)  # plain tokens, counted without a cut
                if run > pos:
                    before = buffer.rfind(b"\n\n", pos, run - 2)
                    last = buffer[pos if before < 0 else before + 2 : run]
                    pos = run
            if crlf:
                end, size = _find_event_end(buffer, pos)
            else:
                end, size = buffer.find(b"\n\n", pos), 2
            if end < 0:
                break
            stop = end + size
            event = buffer[pos:stop]
            if dialect is None:
                if data_of(event) is None:  # a comment or keep-alive before any data
                    pos = stop
                    continue
                dialect = self._dialect = self._choose(event)
            seen = dialect.content_seen
            kept, has_content = dialect.inspect(event)
            if has_content and not seen:
                first_content = True
            if kept is not event:  # dropped or rewritten: the span so far goes as it is
                pieces.append(buffer[sent:pos])
                if kept is not None:
                    pieces.append(kept)
                sent = stop
            if kept is not None:
                last = kept
            pos = stop
        self._buffer = buffer[pos:] if pos < len(buffer) else b""
        if last is not None:
            self._last = last
        if not pieces:
            return (buffer if pos == len(buffer) else buffer[:pos]), first_content
        pieces.append(buffer[sent:pos])
        return b"".join(pieces), first_content

    def flush(self) -> bytes:
        """Whatever is left when the upstream closed (an incomplete last event)."""
        rest, self._buffer = self._buffer, b""
        return rest

    def error_event(self, error: dict[str, Any]) -> bytes:
        """The event that ends a broken stream, in the stream's dialect, so the client's
        SDK raises instead of taking a truncated answer for whole. Before any event the
        dialect is unknown: the chat form, which the SDKs raise on for every route."""
        dialect = self._dialect or ChatDialect(self._strip_usage)
        return dialect.error_event(error, self._last)

    def _choose(self, event: bytes) -> ChatDialect | ResponsesDialect:
        if is_responses(event):
            return ResponsesDialect()
        return ChatDialect(self._strip_usage)


def _find_event_end(buffer: bytes, start: int = 0) -> tuple[int, int]:
    """Where the first event from `start` ends (the delimiter's index and size; -1)."""
    best, size = -1, 0
    for delimiter in _DELIMITERS:
        index = buffer.find(delimiter, start)
        if index >= 0 and (best < 0 or index < best):
            best, size = index, len(delimiter)
    return best, size
