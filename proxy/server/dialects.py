"""The two stream dialects of vLLM's OpenAI server, in one place (pure): what one
server-sent event of each says about generated content and usage, how each reports
an error mid-stream, and the usage field names of each.

- Chat and completions (`/v1/chat/completions`, `/v1/completions`): untyped
  `data: {...choices...}` chunks; content is a non-empty `delta.content` /
  `delta.tool_calls` / `delta.reasoning_content` or a completion's `text`; usage, when
  asked for, comes on a chunk of its own (`prompt_tokens`, `completion_tokens`); an
  error is `data: {"error": {...}}`.
- Responses (`/v1/responses`): typed events, each an `event: <type>` line and a
  `data: {"type": "<type>", ..., "sequence_number": n}` line. Content is any
  `*.delta` event (output text, reasoning, function-call or tool arguments); usage
  (`input_tokens`, `output_tokens`) is in the last event's `response.usage`
  (`response.completed`, or OpenAI's `response.incomplete` / `response.failed`).

The relay learns the dialect from the first event's bytes, never from the path, so
it stays a byte check: vLLM and OpenAI both name Responses events `response.*`.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Some vLLM versions (and OpenAI) put `"usage": null` on every chunk once usage is
# asked for; a client that did not ask must not see it.
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*})')
_RESPONSES_TYPE = re.compile(rb'"type"\s*:\s*"response\.')
_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(-?\d+)')
_TERMINAL = frozenset({b"response.completed", b"response.incomplete", b"response.failed"})


def is_responses(event: bytes) -> bool:
    """Does this (first) event belong to a Responses stream?"""
    return event.startswith((b"event: response.", b"event:response.")) or bool(
        _RESPONSES_TYPE.search(event)
    )


def data_of(event: bytes) -> bytes | None:
    """The event's data field (lines joined, as the SSE spec says)."""
    lines = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def usage_tokens(usage: dict[str, Any]) -> tuple[int | None, int | None]:
    """(output, prompt) tokens of either dialect's usage object."""
    output = usage.get("completion_tokens", usage.get("output_tokens"))
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    return _int_or_none(output), _int_or_none(prompt)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class ChatDialect:
    """`choices[].delta` chunks; strips the usage chunk the proxy asked for itself."""

    __slots__ = ("content_events", "content_seen", "strip_usage", "usage")

    def __init__(self, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self.content_seen = False
        self.content_events = 0
        self.usage: dict[str, Any] | None = None

    def inspect(self, event: bytes) -> tuple[bytes | None, bool]:
        """(the bytes to forward, or None to drop the event; does it carry content?)"""
        # After the first token, a data event that cannot be the usage report nor the
        # end is a token: a byte check, neither its data joined nor its JSON parsed.
        if (
            self.content_seen
            and event.startswith(b"data:")
            and b'"usage"' not in event
            and b"[DONE]" not in event
        ):
            self.content_events += 1
            return event, True
        payload = data_of(event)
        if payload is None or payload == b"[DONE]":
            return event, False
        # Parsing every chunk costs; after the first token only chunks that may be the
        # usage report need a look.
        if self.content_seen and b'"usage"' not in payload:
            self.content_events += 1
            return event, True
        chunk = _json_object(payload)
        if chunk is None:
            return event, False
        choices = chunk.get("choices")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            if self.strip_usage and not choices:
                return None, False
        if self.strip_usage and b'"usage"' in event:
            event = _NULL_USAGE.sub(b"", event)
        has_content = _has_content(choices)
        if has_content:
            self.content_events += 1
            self.content_seen = True
        return event, has_content

    def skim(self, buffer: bytes, start: int) -> int:
        """After the first token, the run of plain token events from `start` counted
        in a few scans of the bytes, none cut out: every whole event before the first
        that may be the usage report or the end, when each starts with `data:` and
        they are "\\n\\n"-delimited (the caller checks there is no "\\r"). What
        `inspect` would say of each, one by one. Returns where the run ends (`start`:
        none)."""
        if not self.content_seen:
            return start
        stop = buffer.find(b'"usage"', start)
        if stop < 0:
            stop = len(buffer)
        done = buffer.find(b"[DONE]", start, stop)
        if done >= 0:
            stop = done
        end = buffer.rfind(b"\n\n", start, stop)
        if end < 0 or buffer.find(b"\n\n\n", start, end + 2) >= 0:
            return start  # no whole event, or blank lines beyond the delimiters
        end += 2
        events = buffer.count(b"\n\n", start, end)
        starts = buffer.startswith(b"data:", start) + buffer.count(b"\n\ndata:", start, end)
        if starts != events:
            return start  # a comment or an event: line among them: one by one
        self.content_events += events
        return end

    def error_event(self, error: dict[str, Any], _last: bytes) -> bytes:
        return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


class ResponsesDialect:
    """Typed `response.*` events, forwarded untouched."""

    __slots__ = ("content_events", "content_seen", "usage")

    def __init__(self) -> None:
        self.content_seen = False
        self.content_events = 0
        self.usage: dict[str, Any] | None = None

    def inspect(self, event: bytes) -> tuple[bytes | None, bool]:
        kind = _event_type(event)
        if kind.endswith(b".delta"):
            if b'"delta":""' in event:  # nothing generated in it
                return event, False
            self.content_events += 1
            self.content_seen = True
            return event, True
        if kind in _TERMINAL:
            payload = data_of(event)
            body = _json_object(payload) if payload is not None else None
            response = body.get("response") if body is not None else None
            usage = response.get("usage") if isinstance(response, dict) else None
            if isinstance(usage, dict):
                self.usage = usage
        return event, False

    def skim(self, buffer: bytes, start: int) -> int:
        """Events are looked at one by one (see `ChatDialect.skim`)."""
        return start

    def error_event(self, error: dict[str, Any], last: bytes) -> bytes:
        """The Responses API's `error` event, numbered after the last event sent. It
        also carries the OpenAI `error` object at the top level: that is what makes the
        official SDKs raise on it (Python: `APIError`) instead of yielding it as one
        more event and returning a truncated answer as if whole."""
        numbers = _SEQUENCE.findall(last)
        sequence = int(numbers[-1]) + 1 if numbers else 0
        payload = {
            "type": "error",
            "code": error.get("code"),
            "message": error.get("message"),
            "param": None,
            "sequence_number": sequence,
            "error": error,
        }
        return b"event: error\ndata: " + json.dumps(payload).encode() + b"\n\n"


def _event_type(event: bytes) -> bytes:
    """The event's type: its `event:` line (what vLLM and OpenAI send), else its data's
    `type` field."""
    if event.startswith(b"event:"):
        end = event.find(b"\n")
        return event[6 : end if end >= 0 else None].strip()
    payload = data_of(event)
    body = _json_object(payload) if payload is not None else None
    kind = body.get("type") if body is not None else None
    return kind.encode() if isinstance(kind, str) else b""


def _has_content(choices: Any) -> bool:
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict) and (
            delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content")
        ):
            return True
        if choice.get("text"):  # completions
            return True
    return False
