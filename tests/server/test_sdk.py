"""The official OpenAI SDK through the proxy gets answers shaped exactly like direct."""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from proxy.server.app import RunningProxy
from proxy.sim.app import SimHandle
from tests.helpers.metrics import metric
from tests.helpers.polling import eventually

MODEL_ARGS: dict[str, Any] = {"max_tokens": 8, "extra_body": {"ignore_eos": True}}
MESSAGES: list[Any] = [{"role": "user", "content": "What is PagedAttention?"}]


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, not the generated text."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def async_client(base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="test", max_retries=0)


async def model_of(base: str) -> str:
    async with async_client(base) as client:
        models = await client.models.list()
    return models.data[0].id


async def test_chat_non_streamed_has_the_same_shape(proxy: RunningProxy, sim: SimHandle) -> None:
    model = await model_of(proxy.url)
    answers = []
    for base in (sim.url, proxy.url):
        async with async_client(base) as client:
            answer = await client.chat.completions.create(
                model=model, messages=MESSAGES, **MODEL_ARGS
            )
        answers.append(answer.model_dump())
    direct, proxied = answers
    assert shape(proxied) == shape(direct)
    assert proxied["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"] == 8


async def test_completions_sync_client_through_the_proxy(proxy: RunningProxy) -> None:
    model = await model_of(proxy.url)

    def call() -> Any:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="test", max_retries=0)
        with client:
            return client.completions.create(model=model, prompt="Hello", **MODEL_ARGS)

    answer = await asyncio.to_thread(call)
    assert answer.object == "text_completion"
    assert answer.usage is not None and answer.usage.completion_tokens == 8


def stream_sync(base: str, model: str, include_usage: bool) -> list[dict[str, Any]]:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="test", max_retries=0)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    with client:
        stream = client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, **MODEL_ARGS, **options
        )
        return [chunk.model_dump(exclude_unset=True) for chunk in stream]


async def test_streamed_chat_without_usage_matches_direct(
    proxy: RunningProxy, sim: SimHandle
) -> None:
    """The proxy asks upstream for usage and strips it again: the client sees what
    it would have seen direct, and the proxy still counts the tokens."""
    model = await model_of(proxy.url)
    direct = await asyncio.to_thread(stream_sync, sim.url, model, False)
    proxied = await asyncio.to_thread(stream_sync, proxy.url, model, False)
    assert all("usage" not in chunk or chunk["usage"] is None for chunk in proxied)
    assert [shape(c) for c in proxied] == [shape(c) for c in direct]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in proxied if c["choices"])
    assert text
    assert metric(proxy.state, "proxy_tokens_total", kind="completion") == 8


async def test_streamed_chat_with_usage_keeps_it(proxy: RunningProxy) -> None:
    model = await model_of(proxy.url)
    async with async_client(proxy.url) as client:
        stream = await client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **MODEL_ARGS,
        )
        chunks = [chunk async for chunk in stream]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 8
    assert chunks[-1].choices == []


async def test_streamed_completions_async(proxy: RunningProxy) -> None:
    model = await model_of(proxy.url)
    async with async_client(proxy.url) as client:
        stream = await client.completions.create(
            model=model, prompt="Once upon a time", stream=True, **MODEL_ARGS
        )
        chunks = [chunk async for chunk in stream]
    assert chunks and all(chunk.object == "text_completion" for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert proxy.state.admission.limiter.inflight == 0


async def test_models_and_health_are_forwarded_without_a_permit(proxy: RunningProxy) -> None:
    async with async_client(proxy.url) as client:
        models = await client.models.list()
    assert models.data
    arrivals = metric(proxy.state, "proxy_arrivals_total", priority="normal")
    assert arrivals == 0  # not a generation request


async def test_the_sdk_retries_a_shed_request_by_itself(make_proxy: Any) -> None:
    """429 + retry-after-ms: the official SDK waits and retries without help."""
    async with make_proxy(initial_limit=1, min_limit=1, max_limit=1, queue_size=0) as proxy:
        model = await model_of(proxy.url)
        async with openai.AsyncOpenAI(
            base_url=f"{proxy.url}/v1", api_key="test", max_retries=5
        ) as client:
            long = asyncio.create_task(
                client.chat.completions.create(
                    model=model, messages=MESSAGES, max_tokens=64, extra_body={"ignore_eos": True}
                )
            )
            await eventually(
                lambda: proxy.state.admission.limiter.inflight == 1, what="first admitted"
            )
            retried = await client.chat.completions.create(
                model=model, messages=MESSAGES, **MODEL_ARGS
            )
            await long
        assert retried.usage is not None and retried.usage.completion_tokens == 8
        shed = metric(proxy.state, "proxy_shed_total", reason="queue_full", priority="normal")
        assert shed >= 1
