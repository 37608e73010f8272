"""The SSE relay: whole events out as soon as they are complete, usage found and
stripped only when the proxy asked for it."""

from __future__ import annotations

import json

from proxy.server.sse import SseRelay


def event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


ROLE = event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
TOKEN = event({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})
USAGE = event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
DONE = b"data: [DONE]\n\n"


def test_a_complete_event_is_released_at_once() -> None:
    relay = SseRelay(strip_usage=False)
    out, first = relay.feed(ROLE)
    assert out == ROLE and not first


def test_a_partial_event_waits_for_its_end() -> None:
    relay = SseRelay(strip_usage=False)
    assert relay.feed(TOKEN[:10]) == (b"", False)
    out, first = relay.feed(TOKEN[10:])
    assert out == TOKEN and first


def test_first_content_is_the_first_non_empty_token_not_the_role_chunk() -> None:
    relay = SseRelay(strip_usage=False)
    _, first_role = relay.feed(ROLE)
    _, first_token = relay.feed(TOKEN)
    _, second_token = relay.feed(TOKEN)
    assert (first_role, first_token, second_token) == (False, True, False)


def test_usage_is_stripped_when_the_proxy_asked_for_it() -> None:
    relay = SseRelay(strip_usage=True)
    out, _ = relay.feed(ROLE + TOKEN + USAGE + DONE)
    assert out == ROLE + TOKEN + DONE
    assert relay.usage == {"prompt_tokens": 3, "completion_tokens": 2}


def test_usage_is_kept_when_the_client_asked_for_it() -> None:
    relay = SseRelay(strip_usage=False)
    out, _ = relay.feed(ROLE + TOKEN + USAGE + DONE)
    assert out == ROLE + TOKEN + USAGE + DONE
    assert relay.usage is not None and relay.usage["completion_tokens"] == 2


def test_completions_text_counts_as_content() -> None:
    relay = SseRelay(strip_usage=False)
    _, first = relay.feed(event({"choices": [{"index": 0, "text": "x"}]}))
    assert first


def test_crlf_delimited_events_are_split() -> None:
    relay = SseRelay(strip_usage=False)
    crlf = TOKEN.replace(b"\n\n", b"\r\n\r\n")
    out, first = relay.feed(crlf + crlf)
    assert out == crlf + crlf and first


def test_flush_returns_an_unfinished_last_event() -> None:
    relay = SseRelay(strip_usage=False)
    relay.feed(b'data: {"cho')
    assert relay.flush() == b'data: {"cho'
