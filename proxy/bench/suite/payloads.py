"""The fixed bodies of the reference benchmark, sized as in issue 12: a 263-byte chat
request, a 565-byte chat-completion answer, and a 52-event SSE answer (role, 48
content chunks, finish, usage, [DONE]) shaped as vLLM sends them; and the wrk Lua
script that posts a body and prints its figures as one JSON line."""

from __future__ import annotations

import json
from collections.abc import Callable

REQUEST_BYTES = 263
JSON_BYTES = 565
SSE_EVENTS = 52
CONTENT_EVENTS = SSE_EVENTS - 4  # role, finish, usage and [DONE] carry no content
MODEL = "bench-model"
WRK_MARKER = "WRK_RESULT "
_WORDS = "Continuous batching keeps the engine busy while requests come and go. "


def _padded(render: Callable[[str], bytes], size: int) -> bytes:
    """Grows the text passed to `render` until the rendering is exactly `size` bytes."""
    text = ""
    while True:
        body = render(text)
        if len(body) == size:
            return body
        if len(body) > size:
            raise ValueError(f"the template alone is {len(body)} bytes, over {size}")
        text += (_WORDS * (size // len(_WORDS) + 1))[: size - len(body)]


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def request_body(stream: bool) -> bytes:
    """The chat request; the streamed one asks for usage itself, so every path under
    test relays the same bytes (nothing for the proxy to strip)."""

    def render(text: str) -> bytes:
        body: dict[str, object] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": CONTENT_EVENTS,
            "temperature": 0.0,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return _dumps(body)

    return _padded(render, REQUEST_BYTES)


def _usage() -> dict[str, int]:
    return {
        "prompt_tokens": 24,
        "total_tokens": 24 + CONTENT_EVENTS,
        "completion_tokens": CONTENT_EVENTS,
    }


def json_answer() -> bytes:
    def render(text: str) -> bytes:
        return _dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 1700000000,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "tool_calls": []},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(),
            }
        )

    return _padded(render, JSON_BYTES)


def sse_event(choices: list[dict[str, object]], **extra: object) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": choices,
        **extra,
    }
    return b"data: " + _dumps(chunk) + b"\n\n"


def content_choice(text: str) -> dict[str, object]:
    return {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}


def sse_answer() -> bytes:
    role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    words = _WORDS.split()
    events = [sse_event([role])]
    events += [sse_event([content_choice(f" {words[i % len(words)]}")]) for i in range(48)]
    events += [sse_event([finish]), sse_event([], usage=_usage()), b"data: [DONE]\n\n"]
    assert len(events) == SSE_EVENTS
    return b"".join(events)


def wrk_script(body: bytes) -> str:
    """POSTs `body`; `done` prints requests, errors and latency percentiles (µs)."""
    text = body.decode()
    if "]]" in text:
        raise ValueError("the body must not contain ']]' (it is a Lua long string)")
    counts = ("requests", "duration_us", "bytes", "socket_errors", "status_errors")
    times = ("p50_us", "p90_us", "p99_us", "mean_us")
    fields = ", ".join([f'"{n}": %d' for n in counts] + [f'"{n}": %.1f' for n in times])
    return f"""wrk.method = "POST"
wrk.body = [[{text}]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{WRK_MARKER}{{{fields}}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""
