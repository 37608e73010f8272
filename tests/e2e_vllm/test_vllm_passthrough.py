"""Through the proxy, a real vLLM answers exactly as it does directly.

Each check sends the same request to vLLM and to the proxy and compares what an
OpenAI client gets: models, answers, usage counts, the shape of streams, error
statuses and bodies. `ignore_eos` with a fixed `max_tokens` makes the length of
every answer known in advance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import pytest
from e2e_vllm_support import Endpoints, post_json, sse_events, vllm_metric, wait_for
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionUserMessageParam

Kind = Literal["chat", "completions"]
KINDS: list[Kind] = ["chat", "completions"]
PATHS: dict[Kind, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
PROMPT = "Count the lighthouses on the northern coast."
MESSAGES = [ChatCompletionUserMessageParam(role="user", content=PROMPT)]
MAX_TOKENS = 12
# Fixed length and greedy decoding: nothing about an answer's size is left to chance.
FIXED = {"max_tokens": MAX_TOKENS, "temperature": 0, "extra_body": {"ignore_eos": True}}


def _create(client: OpenAI, kind: Kind, model: str, **options: Any) -> Any:
    if kind == "chat":
        return client.chat.completions.create(model=model, messages=MESSAGES, **options)
    return client.completions.create(model=model, prompt=PROMPT, **options)


def _payload(kind: Kind, model: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "ignore_eos": True,
    }
    if kind == "chat":
        body["messages"] = [{"role": "user", "content": PROMPT}]
    else:
        body["prompt"] = PROMPT
    body.update(fields)
    return body


def _text(kind: Kind, choice: Any) -> str:
    if kind == "chat":
        return str(choice.message.content or "")
    return str(choice.text or "")


def _event_kind(event: Any) -> str:
    """What one server-sent event is, ignoring its text: role, content, finish, usage, done."""
    if event == "[DONE]":
        return "done"
    parts = []
    choices = event.get("choices") or []
    if choices:
        choice = choices[0]
        delta = choice.get("delta") or {}
        if delta.get("role"):
            parts.append("role")
        if delta.get("content") or choice.get("text"):
            parts.append("content")
        if choice.get("finish_reason"):
            parts.append("finish")
    if event.get("usage"):
        parts.append("usage")
    return "+".join(parts) or "empty"


def _shape(events: Iterable[Any]) -> list[str]:
    """Event kinds with runs collapsed: how many tokens share a chunk may differ by timing."""
    shape: list[str] = []
    for event in events:
        kind = _event_kind(event)
        if not shape or shape[-1] != kind:
            shape.append(kind)
    return shape


def test_models_list_is_vllms(direct: OpenAI, proxied: OpenAI, endpoints: Endpoints) -> None:
    through_proxy = [model.id for model in proxied.models.list()]
    assert endpoints.model in through_proxy
    assert through_proxy == [model.id for model in direct.models.list()]


@pytest.mark.parametrize("kind", KINDS)
def test_answer_and_usage_equal_vllms(
    kind: Kind, direct: OpenAI, proxied: OpenAI, endpoints: Endpoints
) -> None:
    reference = _create(direct, kind, endpoints.model, **FIXED)
    answer = _create(proxied, kind, endpoints.model, **FIXED)
    assert answer.object == reference.object
    assert answer.choices[0].finish_reason == "length"
    assert _text(kind, answer.choices[0])
    assert answer.usage is not None and reference.usage is not None
    assert answer.usage.completion_tokens == MAX_TOKENS
    assert answer.usage.model_dump() == reference.usage.model_dump()


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_usage_when_asked_equals_vllms(
    kind: Kind, direct: OpenAI, proxied: OpenAI, endpoints: Endpoints
) -> None:
    options = {**FIXED, "stream": True, "stream_options": {"include_usage": True}}
    reference = list(_create(direct, kind, endpoints.model, **options))
    chunks = list(_create(proxied, kind, endpoints.model, **options))
    with_usage = [chunk for chunk in chunks if chunk.usage is not None]
    assert len(with_usage) == 1, "exactly one usage chunk"
    assert chunks[-1] is with_usage[0], "the usage chunk comes last"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == MAX_TOKENS
    assert chunks[-1].usage.model_dump() == reference[-1].usage.model_dump()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "stream_options", [None, {"include_usage": False}], ids=["no-options", "usage-false"]
)
def test_stream_without_usage_request_has_no_usage_chunk(
    kind: Kind,
    stream_options: dict[str, bool] | None,
    proxied: OpenAI,
    endpoints: Endpoints,
) -> None:
    options: dict[str, Any] = {**FIXED, "stream": True}
    if stream_options is not None:
        options["stream_options"] = stream_options
    chunks = list(_create(proxied, kind, endpoints.model, **options))
    assert chunks, "the stream carried chunks"
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks), "no usage-only chunk without choices"
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "stream_options",
    [None, {"include_usage": False}, {"include_usage": True}],
    ids=["no-options", "usage-false", "usage-true"],
)
async def test_stream_shape_equals_vllms(
    kind: Kind, stream_options: dict[str, bool] | None, endpoints: Endpoints
) -> None:
    fields: dict[str, Any] = {"stream": True}
    if stream_options is not None:
        fields["stream_options"] = stream_options
    payload = _payload(kind, endpoints.model, **fields)
    reference = await sse_events(endpoints.vllm, PATHS[kind], payload)
    events = await sse_events(endpoints.proxy, PATHS[kind], payload)
    assert _shape(events) == _shape(reference)
    assert events[-1] == "[DONE]"
    objects = {event["object"] for event in events if event != "[DONE]"}
    assert objects == {event["object"] for event in reference if event != "[DONE]"}


async def test_client_disconnect_aborts_the_vllm_request(endpoints: Endpoints) -> None:
    async def running() -> float:
        return await vllm_metric(endpoints.vllm, "vllm:num_requests_running")

    async def completed() -> float:
        # vLLM 0.32 does not count a client's abort under finished_reason="abort"; a request
        # that left `running` without being counted as completed was aborted.
        return await vllm_metric(endpoints.vllm, "vllm:request_success_total")

    async def idle() -> bool:
        return await running() == 0

    async def busy() -> bool:
        return await running() == 1

    assert await wait_for(idle, within=30), "vLLM was idle before the check"
    completed_before = await completed()
    client = AsyncOpenAI(base_url=endpoints.proxy + "/v1", api_key="e2e", max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model=endpoints.model,
            messages=MESSAGES,
            stream=True,
            # Long enough that vLLM would go on decoding well past the deadlines below.
            max_tokens=endpoints.max_model_len - 64,
            extra_body={"ignore_eos": True},
        )
        received = 0
        async for _chunk in stream:
            received += 1
            if received == 5:
                break
        assert await wait_for(busy, within=5), "the request was running at vLLM mid-stream"
        await stream.close()
    assert await wait_for(idle, within=5), "vLLM still decoding after the client left"
    assert await completed() == completed_before, "vLLM finished the request instead"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_unknown_model_error_passes_through(
    kind: Kind, stream: bool, endpoints: Endpoints
) -> None:
    payload = _payload(kind, "no-such-model", stream=stream)
    reference = await post_json(endpoints.vllm, PATHS[kind], payload)
    answer = await post_json(endpoints.proxy, PATHS[kind], payload)
    assert reference.status == 404
    assert answer.status == reference.status
    assert answer.content_type == reference.content_type
    assert answer.json() == reference.json()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_prompt_longer_than_max_model_len_error_passes_through(
    kind: Kind, stream: bool, endpoints: Endpoints
) -> None:
    too_long = "hello " * (endpoints.max_model_len + 500)
    payload = _payload(kind, endpoints.model, stream=stream)
    if kind == "chat":
        payload["messages"] = [{"role": "user", "content": too_long}]
    else:
        payload["prompt"] = too_long
    reference = await post_json(endpoints.vllm, PATHS[kind], payload)
    answer = await post_json(endpoints.proxy, PATHS[kind], payload)
    assert reference.status == 400
    assert answer.status == reference.status
    assert answer.content_type == reference.content_type
    assert answer.json() == reference.json()
