"""OpenAI-compatible request parsing and response bodies, shaped like vLLM's (pure).

Prompt length is estimated, not tokenised: ceil(characters / 4) per text (the usual
rule of thumb for English with Llama-3's tokenizer), plus 5 template tokens per chat
message and 5 for the begin/assistant header, as Llama-3's chat template adds. A
completions prompt given as token ids counts exactly.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

CHARS_PER_TOKEN = 4
TEMPLATE_TOKENS_PER_MESSAGE = 5
TEMPLATE_TOKENS_PER_CHAT = 5

Kind = Literal["chat", "completion", "responses"]


class SimHTTPError(Exception):
    """An error answer in vLLM's shape: {"error": {message, type, param, code}}."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "BadRequestError",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.type, self.param)


def error_body(status: int, message: str, type_: str, param: str | None = None) -> dict[str, Any]:
    # vLLM sets `code` to the HTTP status as an integer.
    return {"error": {"message": message, "type": type_, "param": param, "code": status}}


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class GenRequest:
    kind: Kind
    model: str
    prompt_tokens: int
    max_tokens: int | None
    ignore_eos: bool
    stream: bool
    include_usage: bool
    # Request fields a Responses answer echoes back (instructions, temperature, ...).
    echo: dict[str, Any] = field(default_factory=dict)


def content_tokens(content: object) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return estimate_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if not isinstance(part, dict):
                raise SimHTTPError(400, "message content parts must be objects")
            text = part.get("text")
            total += estimate_tokens(text) if isinstance(text, str) else 0
        return total
    raise SimHTTPError(400, "message content must be a string or a list of parts")


def _chat_prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimHTTPError(400, "'messages' must be a non-empty list")
    total = TEMPLATE_TOKENS_PER_CHAT
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise SimHTTPError(400, "each message must be an object with a 'role'")
        total += TEMPLATE_TOKENS_PER_MESSAGE + content_tokens(message.get("content"))
    return total


def _completion_prompt_tokens(body: dict[str, Any]) -> int:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        return max(1, estimate_tokens(prompt))
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    raise SimHTTPError(400, "'prompt' must be a string or a list of token ids (one prompt)")


def optional_int(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SimHTTPError(400, f"'{name}' must be a positive integer")
        return value
    return None


def flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SimHTTPError(400, f"'{name}' must be a boolean")
    return value


def load_body(raw: bytes, served_model: str) -> tuple[dict[str, Any], str]:
    """The request's JSON object and the model it names (the served one if none)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SimHTTPError(400, f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise SimHTTPError(400, "the request body must be a JSON object")
    model = body.get("model") or served_model
    if model != served_model:
        raise SimHTTPError(404, f"The model `{model}` does not exist.", "NotFoundError")
    return body, model


def parse_request(kind: Kind, raw: bytes, served_model: str, max_model_len: int) -> GenRequest:
    body, model = load_body(raw, served_model)
    n = body.get("n", 1)
    if n not in (1, None):
        raise SimHTTPError(400, "the simulator supports n=1 only")
    if kind == "chat":
        prompt_tokens = _chat_prompt_tokens(body)
        max_tokens = optional_int(body, "max_completion_tokens", "max_tokens")
    else:
        prompt_tokens = _completion_prompt_tokens(body)
        # The completions API defaults to 16 when the field is absent (vLLM too);
        # an explicit null means "up to max_model_len".
        max_tokens = optional_int(body, "max_tokens") if "max_tokens" in body else 16
    if prompt_tokens >= max_model_len:
        raise SimHTTPError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"request has {prompt_tokens} input tokens. Please reduce the length of the "
            "input messages.",
        )
    if max_tokens is not None and prompt_tokens + max_tokens > max_model_len:
        raise SimHTTPError(
            400,
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This "
            f"model's maximum context length is {max_model_len} tokens and your request "
            f"has {prompt_tokens} input tokens ({max_tokens} > {max_model_len} - "
            f"{prompt_tokens}).",
        )
    stream = flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise SimHTTPError(400, "'stream_options' must be an object")
    if options is not None and not stream:
        raise SimHTTPError(400, "Stream options can only be defined when `stream=True`.")
    include_usage = bool(options and options.get("include_usage"))
    return GenRequest(
        kind=kind,
        model=model,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        ignore_eos=flag(body, "ignore_eos"),
        stream=stream,
        include_usage=include_usage,
    )


_WORDS = (  # one token each, so text and usage agree
    "the", "model", "is", "a", "simulated", "stand", "in", "for", "vLLM", "and", "every",
    "word", "here", "costs", "one", "token", "so", "that", "usage", "and", "text", "agree",
    "while", "the", "proxy", "measures", "latency", "under", "load",
)  # fmt: skip


def token_text(start: int, count: int) -> str:
    """`count` fake tokens from position `start` of an endless word cycle, one word each."""
    n = len(_WORDS)
    return "".join(" " + _WORDS[i % n] for i in range(start, start + count))


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }


class Shaper:
    """Builds one request's response bodies; SSE chunks are byte templates because
    they are written hundreds of times per second."""

    def __init__(self, req: GenRequest) -> None:
        self.req = req
        self.created = int(time.time())
        prefix = "chatcmpl-" if req.kind == "chat" else "cmpl-"
        self.id = prefix + uuid.uuid4().hex
        self.object = "chat.completion" if req.kind == "chat" else "text_completion"
        head = {"id": self.id, "object": self.object, "created": self.created, "model": req.model}
        if req.kind == "chat":
            head["object"] = "chat.completion.chunk"
        self._head = json.dumps(head)[:-1]  # open object, choices appended
        self._usage_null = ',"usage":null' if req.include_usage else ""

    def _chunk(self, choice: str) -> bytes:
        return f'data: {self._head},"choices":[{choice}]{self._usage_null}}}\n\n'.encode()

    def role_chunk(self) -> bytes:
        """vLLM's first chat chunk announces the role with empty content."""
        return self._chunk(
            '{"index":0,"delta":{"role":"assistant","content":""},'
            '"logprobs":null,"finish_reason":null}'
        )

    def text_chunk(self, text: str, finish_reason: str | None) -> bytes:
        reason = "null" if finish_reason is None else f'"{finish_reason}"'
        if self.req.kind == "chat":
            delta = json.dumps({"content": text}) if text else "{}"
            return self._chunk(
                f'{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{reason}}}'
            )
        return self._chunk(
            f'{{"index":0,"text":{json.dumps(text)},"logprobs":null,'
            f'"finish_reason":{reason},"stop_reason":null}}'
        )

    # The stream as a writer sees it (the same for every route's shaper): the events
    # before the first token, those for each batch of released tokens, those at the end.
    def opening(self) -> list[bytes]:
        return [self.role_chunk()] if self.req.kind == "chat" else []

    def step(self, text: str, finish_reason: str | None) -> list[bytes]:
        return [self.text_chunk(text, finish_reason)]

    def closing(self, completion_tokens: int, finish_reason: str) -> list[bytes]:
        usage = [self.usage_chunk(completion_tokens)] if self.req.include_usage else []
        return [*usage, DONE]

    def usage_chunk(self, completion_tokens: int) -> bytes:
        u = json.dumps(usage(self.req.prompt_tokens, completion_tokens))
        return f'data: {self._head},"choices":[],"usage":{u}}}\n\n'.encode()

    def full(self, text: str, finish_reason: str, completion_tokens: int) -> dict[str, Any]:
        choice: dict[str, Any]
        if self.req.kind == "chat":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.req.model,
            "choices": [choice],
            "usage": usage(self.req.prompt_tokens, completion_tokens),
        }


DONE = b"data: [DONE]\n\n"
