"""Server-sent events relay: split upstream bytes into whole events as they arrive,
find the first content token and the usage report, and drop the usage event the
proxy asked for on the client's behalf.

Pure (no I/O): the forwarder feeds it chunks and writes out what it returns, so a
complete event is never held back waiting for the next one.
"""

from __future__ import annotations

import json
import re
from typing import Any

_DELIMITERS = (b"\r\n\r\n", b"\n\n", b"\r\r")
# Some vLLM versions (and OpenAI) put `"usage": null` on every chunk once usage is
# asked for; a client that did not ask must not see it.
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*})')


class SseRelay:
    def __init__(self, strip_usage: bool) -> None:
        self._strip_usage = strip_usage
        self._buffer = b""
        self.content_seen = False  # a chunk with generated text went by
        self.content_events = 0
        self.usage: dict[str, Any] | None = None

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Returns the bytes to send now, and whether the first content arrived in them."""
        self._buffer += data
        out: list[bytes] = []
        first_content = False
        while True:
            end, size = _find_event_end(self._buffer)
            if end < 0:
                break
            event = self._buffer[: end + size]
            self._buffer = self._buffer[end + size :]
            keep, has_content = self._inspect(event)
            if has_content and not self.content_seen:
                self.content_seen = True
                first_content = True
            if keep:
                if self._strip_usage and b'"usage"' in event:
                    event = _NULL_USAGE.sub(b"", event)
                out.append(event)
        return b"".join(out), first_content

    def flush(self) -> bytes:
        """Whatever is left when the upstream closed (an incomplete last event)."""
        rest, self._buffer = self._buffer, b""
        return rest

    def _inspect(self, event: bytes) -> tuple[bool, bool]:
        """(forward it?, does it carry generated content?)"""
        payload = _data_of(event)
        if payload is None or payload == b"[DONE]":
            return True, False
        # Parsing every chunk costs; after the first token only chunks that may be the
        # usage report need a look.
        if self.content_seen and b'"usage"' not in payload:
            self.content_events += 1
            return True, True
        try:
            chunk = json.loads(payload)
        except ValueError:
            return True, False
        if not isinstance(chunk, dict):
            return True, False
        choices = chunk.get("choices")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            if self._strip_usage and not choices:
                return False, False
        has_content = _has_content(choices)
        if has_content:
            self.content_events += 1
        return True, has_content


def _find_event_end(buffer: bytes) -> tuple[int, int]:
    if b"\r" not in buffer:  # the common case (vLLM, OpenAI): one scan, not three
        return buffer.find(b"\n\n"), 2
    best, size = -1, 0
    for delimiter in _DELIMITERS:
        index = buffer.find(delimiter)
        if index >= 0 and (best < 0 or index < best):
            best, size = index, len(delimiter)
    return best, size


def _data_of(event: bytes) -> bytes | None:
    """The event's data field (lines joined, as the SSE spec says)."""
    lines = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _has_content(choices: Any) -> bool:
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
            return True
        if choice.get("text"):  # completions
            return True
        if isinstance(delta, dict) and delta.get("reasoning_content"):
            return True
    return False
