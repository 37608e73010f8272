"""The relay's byte-scan shortcut (`ChatDialect.skim`) says what inspecting every event
one by one says: the same bytes out, the same first token, counts and usage, however
the stream is cut into chunks."""

from __future__ import annotations

import json
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.server.dialects import ChatDialect
from proxy.server.sse import SseRelay


def _data(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode()


_EVENTS = [
    _data({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
    _data({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
    _data({"choices": [{"index": 0, "delta": {"content": " there"}}], "usage": None}),
    _data({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]}),
    _data({"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]}),
    _data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    _data({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
    _data({"choices": [{"text": "done"}]}) + b"\ndata: [DONE]",  # two data lines
    b": keep-alive",
    b"event: message\n" + _data({"choices": [{"index": 0, "delta": {"content": "e"}}]}),
    b"data: [DONE]",
    b"data: not json",
]
_DELIMITERS = [b"\n\n", b"\n\n", b"\n\n", b"\r\n\r\n", b"\n\n\n"]


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    events = draw(st.lists(st.sampled_from(_EVENTS), max_size=30))
    crlf = draw(st.booleans())
    parts = []
    for event in events:
        delimiter = draw(st.sampled_from(_DELIMITERS)) if crlf else b"\n\n"
        parts.append(event + delimiter)
    body = b"".join(parts) + draw(st.sampled_from([b"", b'data: {"cho']))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=8)))
    return body, cuts


def _relay(body: bytes, cuts: list[int], strip_usage: bool) -> tuple[object, ...]:
    relay = SseRelay(strip_usage)
    out, firsts = [], []
    for start, stop in zip([0, *cuts], [*cuts, len(body)], strict=True):
        sent, first = relay.feed(body[start:stop])
        out.append(sent)
        firsts.append(first)
    # where the first token arrived, not just whether
    first_at = firsts.index(True) if True in firsts else None
    return (
        b"".join(out),
        first_at,
        relay.content_events,
        relay.usage,
        relay.flush(),
        relay.error_event({"message": "x"}),
    )


@settings(max_examples=300, deadline=None)
@given(streams(), st.booleans())
def test_skimming_says_what_inspecting_every_event_says(
    stream: tuple[bytes, list[int]], strip_usage: bool
) -> None:
    body, cuts = stream
    fast = _relay(body, cuts, strip_usage)
    with mock.patch.object(ChatDialect, "skim", lambda self, buffer, start: start):
        one_by_one = _relay(body, cuts, strip_usage)
    assert fast == one_by_one


def test_a_whole_answer_in_one_chunk_is_skimmed_between_first_token_and_usage() -> None:
    tokens = [_EVENTS[1] + b"\n\n"] * 40
    body = _EVENTS[0] + b"\n\n" + b"".join(tokens) + _EVENTS[6] + b"\n\ndata: [DONE]\n\n"
    relay = SseRelay(strip_usage=True)
    original = ChatDialect.inspect
    with mock.patch.object(ChatDialect, "inspect", autospec=True, side_effect=original) as inspect:
        out, first = relay.feed(body)
    assert first and relay.content_events == 40
    assert relay.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert out == body.replace(_EVENTS[6] + b"\n\n", b"")  # the usage the proxy asked for
    assert inspect.call_count < 10  # role, first token, usage, [DONE]: not 40 tokens
