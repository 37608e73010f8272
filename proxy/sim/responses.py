"""The Responses API (`POST /v1/responses`) as vLLM serves it: request parsing and
answer shapes (pure).

Shapes from vLLM 0.32.0 (`vllm/entrypoints/openai/responses/`: `protocol.py` for the
request and `ResponsesResponse`, `serving.py` `responses_stream_generator` for the
event order and numbering, `streaming_events.py` for the message events, `api_router.py`
for the SSE framing), checked field by field against the real CPU vLLM:

- every event is `event: <type>` + `data: <compact JSON>`, numbered by
  `sequence_number` from 0, and no `[DONE]` ends the stream;
- `response.created`, `response.in_progress` at once; at the first text
  `response.output_item.added`, `response.content_part.added`; one
  `response.output_text.delta` per batch of tokens; then `response.output_text.done`,
  `response.content_part.done`, `response.output_item.done`, `response.completed`;
- the last event (and a non-streamed answer) carries `usage` (`input_tokens`,
  `output_tokens`, `total_tokens` and their details); a request that hit its
  `max_output_tokens` is `status: "incomplete"` with `incomplete_details`, yet still
  ends with `response.completed`, as vLLM's does.

The prompt is `instructions` (a system message) plus `input` (a string: one user
message; or a list of messages / items), counted as chat messages are.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from proxy.sim.protocol import (
    TEMPLATE_TOKENS_PER_CHAT,
    TEMPLATE_TOKENS_PER_MESSAGE,
    GenRequest,
    SimHTTPError,
    content_tokens,
    estimate_tokens,
    flag,
    load_body,
    token_text,
)

# Echoed as given, with vLLM's default when absent.
_ECHOED: dict[str, Any] = {
    "instructions": None,
    "metadata": None,
    "max_tool_calls": None,
    "previous_response_id": None,
    "prompt": None,
    "reasoning": None,
    "service_tier": "auto",
    "text": None,
    "truncation": "disabled",
    "user": None,
    "tools": [],
    "background": False,
}


def _input_tokens(body: dict[str, Any]) -> int:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise SimHTTPError(400, "'input' must be a string or a non-empty list", param="input")
    total = TEMPLATE_TOKENS_PER_CHAT
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        total += TEMPLATE_TOKENS_PER_MESSAGE + estimate_tokens(instructions)
    for item in items:
        if not isinstance(item, dict):
            raise SimHTTPError(400, "each input item must be an object", param="input")
        # A message has `content`; tool items carry `output` or `arguments` instead.
        text = item.get("content", item.get("output", item.get("arguments")))
        total += TEMPLATE_TOKENS_PER_MESSAGE + content_tokens(text)
    return total


def parse_responses_request(raw: bytes, served_model: str, max_model_len: int) -> GenRequest:
    body, model = load_body(raw, served_model)
    if "input" not in body:
        raise SimHTTPError(400, "Field required: input", "Bad Request", "body.input")
    prompt_tokens = _input_tokens(body)
    requested = body.get("max_output_tokens")
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int)):
        raise SimHTTPError(400, "'max_output_tokens' must be an integer", param="max_output_tokens")
    if requested is not None and requested < 1:
        raise SimHTTPError(
            400,
            f"max_tokens must be at least 1, got {requested}. "
            f"(parameter=max_tokens, value={requested})",
            param="max_tokens",
        )
    if requested is not None and requested > max_model_len:
        raise SimHTTPError(
            400,
            f"max_output_tokens={requested} cannot be greater than max_model_len="
            f"{max_model_len}. Please request fewer output tokens. "
            f"(parameter=max_output_tokens, value={requested})",
            param="max_output_tokens",
        )
    if prompt_tokens >= max_model_len:
        raise SimHTTPError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"prompt contains at least {prompt_tokens} input tokens, which exceeds this "
            "limit even without any output tokens. Please reduce the length of the input "
            f"prompt. (parameter=input_tokens, value={prompt_tokens})",
            param="input_tokens",
        )
    # vLLM clamps the output to what the context has left, without an error.
    room = max_model_len - prompt_tokens
    max_tokens = room if requested is None else min(requested, room)
    echo = {name: body.get(name, default) for name, default in _ECHOED.items()}
    echo["background"] = bool(echo["background"])
    echo["parallel_tool_calls"] = body.get("parallel_tool_calls", True) is not False
    echo["temperature"] = _float(body.get("temperature"), 1.0)
    echo["top_p"] = _float(body.get("top_p"), 1.0)
    choice = body.get("tool_choice", "auto")
    echo["tool_choice"] = "none" if not echo["tools"] and choice in ("auto", "none") else choice
    return GenRequest(
        kind="responses",
        model=model,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        ignore_eos=flag(body, "ignore_eos"),
        stream=flag(body, "stream"),
        include_usage=True,
        echo=echo,
    )


def _float(value: object, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return default


def _event(kind: str, payload: str) -> bytes:
    """One SSE event; `payload` is the JSON object without its closing brace."""
    return f'event: {kind}\ndata: {payload},"type":"{kind}"}}\n\n'.encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class ResponsesShaper:
    """One request's events and body. The delta event is a byte template: it goes out
    once per token at vLLM's default stream interval."""

    def __init__(self, req: GenRequest) -> None:
        self.req = req
        self.created = int(time.time())
        self.id = "resp_" + uuid.uuid4().hex[:16]
        self.item_id = "msg_" + uuid.uuid4().hex[:16]
        self._sequence = 0
        self._opened = False
        self._delta_tail = f',"item_id":"{self.item_id}","logprobs":[],"output_index":0'

    def _next(self) -> int:
        number, self._sequence = self._sequence, self._sequence + 1
        return number

    def _numbered(self, kind: str, fields: str, after: str = "") -> bytes:
        """`fields` (an open JSON object), the sequence number, `after`, the type: the
        field order of vLLM's events (pydantic's, alphabetical for OpenAI's types)."""
        return _event(kind, f'{fields},"sequence_number":{self._next()}{after}')

    def response(
        self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        echo = self.req.echo
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.id,
            "created_at": self.created,
            "incomplete_details": incomplete,
            "instructions": echo.get("instructions"),
            "metadata": echo.get("metadata"),
            "model": self.req.model,
            "object": "response",
            "output": output,
            "parallel_tool_calls": echo.get("parallel_tool_calls", True),
            "temperature": echo.get("temperature", 1.0),
            "tool_choice": echo.get("tool_choice", "none"),
            "tools": echo.get("tools", []),
            "top_p": echo.get("top_p", 1.0),
            "background": echo.get("background", False),
            "max_output_tokens": self.req.max_tokens,
            "max_tool_calls": echo.get("max_tool_calls"),
            "previous_response_id": echo.get("previous_response_id"),
            "prompt": echo.get("prompt"),
            "reasoning": echo.get("reasoning"),
            "service_tier": echo.get("service_tier", "auto"),
            "status": status,
            "text": echo.get("text"),
            "top_logprobs": None,
            "truncation": echo.get("truncation", "disabled"),
            "usage": usage,
            "user": echo.get("user"),
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "input_messages": None,
            "output_messages": None,
        }

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        prompt = self.req.prompt_tokens
        return {
            "input_tokens": prompt,
            "input_tokens_details": {
                "cached_tokens": 0,
                "cache_write_tokens": 0,
                "input_tokens_per_turn": [],
                "cached_tokens_per_turn": [],
            },
            "output_tokens": completion_tokens,
            "output_tokens_details": {
                "reasoning_tokens": 0,
                "tool_output_tokens": 0,
                "output_tokens_per_turn": [],
                "tool_output_tokens_per_turn": [],
            },
            "total_tokens": prompt + completion_tokens,
        }

    def _part(self, text: str, logprobs: list[Any] | None) -> dict[str, Any]:
        return {"annotations": [], "text": text, "type": "output_text", "logprobs": logprobs}

    def _item(self, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.item_id,
            "content": content,
            "role": "assistant",
            "status": status,
            "type": "message",
            "phase": None,
        }

    def opening(self) -> list[bytes]:
        initial = '{"response":' + _dumps(self.response("in_progress", [], None))
        return [
            self._numbered("response.created", initial),
            self._numbered("response.in_progress", initial),
        ]

    def step(self, text: str, finish_reason: str | None) -> list[bytes]:
        if not text:  # vLLM sends no delta for a step that produced no text
            return []
        events = []
        if not self._opened:
            self._opened = True
            item = _dumps(self._item("in_progress", []))
            part = _dumps(self._part("", []))
            events.append(
                self._numbered("response.output_item.added", f'{{"item":{item},"output_index":0')
            )
            events.append(
                self._numbered(
                    "response.content_part.added",
                    f'{{"content_index":0,"item_id":"{self.item_id}","output_index":0,'
                    f'"part":{part}',
                )
            )
        delta = f'{{"content_index":0,"delta":{_dumps(text)}{self._delta_tail}'
        events.append(self._numbered("response.output_text.delta", delta))
        return events

    def closing(self, completion_tokens: int, finish_reason: str) -> list[bytes]:
        text = token_text(0, completion_tokens)
        done_part = _dumps(self._part(text, None))
        item = self._item("completed", [self._part(text, None)])
        final = self.response(_status(finish_reason), [item], self.usage(completion_tokens))
        head = f'{{"content_index":0,"item_id":"{self.item_id}"'
        return [
            self._numbered(
                "response.output_text.done",
                f'{head},"logprobs":[],"output_index":0',
                f',"text":{_dumps(text)}',
            ),
            self._numbered(
                "response.content_part.done", f'{head},"output_index":0,"part":{done_part}'
            ),
            self._numbered(
                "response.output_item.done", f'{{"item":{_dumps(item)},"output_index":0'
            ),
            self._numbered("response.completed", '{"response":' + _dumps(final)),
        ]

    def full(self, text: str, finish_reason: str, completion_tokens: int) -> dict[str, Any]:
        item = self._item("completed", [self._part(text, None)])
        return self.response(_status(finish_reason), [item], self.usage(completion_tokens))


def _status(finish_reason: str) -> str:
    return "incomplete" if finish_reason == "length" else "completed"
