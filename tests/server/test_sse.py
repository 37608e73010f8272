"""The SSE relay: whole events out as soon as they are complete, usage found and
stripped only when the proxy asked for it."""

from __future__ import annotations

import json

import pytest

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


# --- the Responses dialect -----------------------------------------------------------------


def typed(kind: str, sequence: int, **fields: object) -> bytes:
    """One Responses event as vLLM frames it: an `event:` line and compact JSON data."""
    data = json.dumps({**fields, "sequence_number": sequence, "type": kind}, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


RESPONSE = {"id": "resp_1", "object": "response", "status": "in_progress", "usage": None}
USAGE_R = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
CREATED = typed("response.created", 0, response=RESPONSE)
ADDED = typed("response.output_item.added", 1, item={"type": "message"}, output_index=0)
DELTA = typed("response.output_text.delta", 2, delta=" Hi", item_id="msg_1")
DONE_TEXT = typed("response.output_text.done", 3, text=" Hi", item_id="msg_1")
COMPLETED = typed("response.completed", 4, response={**RESPONSE, "usage": USAGE_R})
RESPONSES_STREAM = CREATED + ADDED + DELTA + DELTA + DONE_TEXT + COMPLETED


def test_a_responses_stream_passes_byte_for_byte() -> None:
    relay = SseRelay(strip_usage=True)  # even if asked to strip: nothing is taken out
    out, _ = relay.feed(RESPONSES_STREAM)
    assert out == RESPONSES_STREAM and relay.responses


def test_responses_first_content_is_the_first_delta_not_the_created_event() -> None:
    relay = SseRelay(strip_usage=False)
    firsts = [relay.feed(event)[1] for event in (CREATED, ADDED, DELTA, DELTA, COMPLETED)]
    assert firsts == [False, False, True, False, False]
    assert relay.content_events == 2


def test_responses_usage_comes_from_the_completed_event() -> None:
    relay = SseRelay(strip_usage=False)
    relay.feed(RESPONSES_STREAM)
    assert relay.usage == USAGE_R


@pytest.mark.parametrize(
    "kind",
    [
        "response.reasoning_text.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
    ],
)
def test_reasoning_and_tool_call_deltas_count_as_content(kind: str) -> None:
    relay = SseRelay(strip_usage=False)
    relay.feed(CREATED)
    _, first = relay.feed(typed(kind, 1, delta="x", item_id="fc_1"))
    assert first


def test_an_empty_delta_is_not_content() -> None:
    relay = SseRelay(strip_usage=False)
    _, first = relay.feed(CREATED + typed("response.output_text.delta", 1, delta=""))
    assert not first and relay.content_events == 0


@pytest.mark.parametrize("kind", ["response.incomplete", "response.failed"])
def test_openais_other_final_events_carry_usage_too(kind: str) -> None:
    relay = SseRelay(strip_usage=False)
    relay.feed(CREATED + DELTA + typed(kind, 3, response={**RESPONSE, "usage": USAGE_R}))
    assert relay.usage == USAGE_R


def test_typed_events_without_an_event_line_are_understood() -> None:
    relay = SseRelay(strip_usage=False)
    bare = b"".join(e.split(b"\n", 1)[1] for e in (CREATED, DELTA, COMPLETED))
    out, first = relay.feed(bare)
    assert out == bare and first and relay.usage == USAGE_R


ERROR = {"message": "The upstream server broke off its answer.", "type": "bad_gateway"}


def test_a_broken_responses_stream_ends_with_the_next_numbered_error_event() -> None:
    relay = SseRelay(strip_usage=False)
    relay.feed(CREATED + ADDED + DELTA)
    event = relay.error_event({**ERROR, "code": "upstream_stream_cut"})
    name, data = event.decode().split("\n", 1)
    payload = json.loads(data.removeprefix("data: "))
    assert name == "event: error" and event.endswith(b"\n\n")
    assert (payload["type"], payload["sequence_number"]) == ("error", 3)
    assert payload["code"] == "upstream_stream_cut" and payload["message"] == ERROR["message"]
    assert payload["error"]["type"] == "bad_gateway"  # what the OpenAI SDK raises on


def test_a_broken_chat_stream_ends_with_a_chat_error_chunk() -> None:
    relay = SseRelay(strip_usage=False)
    relay.feed(ROLE + TOKEN)
    event = relay.error_event(ERROR)
    assert event == b"data: " + json.dumps({"error": ERROR}).encode() + b"\n\n"


def test_a_keep_alive_comment_before_the_first_event_does_not_decide_the_dialect() -> None:
    relay = SseRelay(strip_usage=False)
    out, _ = relay.feed(b": ping\n\n" + CREATED)
    assert out == b": ping\n\n" + CREATED and relay.responses
