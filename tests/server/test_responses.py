"""The Responses API through the proxy with the official SDK (`client.responses.create`,
sync and async, streamed and not): the answers equal direct, nothing is added to or
taken from the stream, the proxy's own errors and a cut stream make the SDK raise, and
what the proxy records is what the client measured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from proxy.core.outcome import Outcome, UpstreamErrorKind
from proxy.server.app import RunningProxy
from proxy.server.inbound import plan_request
from proxy.server.state import ADMITTED_PATHS
from proxy.sim.app import SimHandle
from tests.helpers.metrics import metric
from tests.helpers.polling import eventually
from tests.helpers.samples import record_samples
from tests.helpers.settings import ProxyFactory
from tests.server.test_sdk import model_of, shape

FIXED: dict[str, Any] = {"max_output_tokens": 8, "extra_body": {"ignore_eos": True}}


def async_client(base: str, retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="test", max_retries=retries)


def sync_client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="test", max_retries=0)


def comparable(event: dict[str, Any]) -> Any:
    """An event's structure, without what differs between two answers (ids, times)."""
    return (event["type"], event["sequence_number"], shape(event))


async def stream_events(base: str, model: str) -> list[dict[str, Any]]:
    async with async_client(base) as client:
        stream = await client.responses.create(model=model, input="hi", stream=True, **FIXED)
        return [event.model_dump() async for event in stream]


async def test_streamed_events_through_the_proxy_equal_direct(
    proxy: RunningProxy, sim: SimHandle
) -> None:
    model = await model_of(proxy.url)
    direct = await stream_events(sim.url, model)
    proxied = await stream_events(proxy.url, model)
    assert [comparable(e) for e in proxied] == [comparable(e) for e in direct]
    assert proxied[-1]["response"]["usage"]["output_tokens"] == 8


async def test_a_whole_answer_through_the_proxy_equals_direct_and_is_counted(
    proxy: RunningProxy, sim: SimHandle
) -> None:
    recorder = record_samples(proxy)
    model = await model_of(proxy.url)
    answers = []
    for base in (sim.url, proxy.url):
        async with async_client(base) as client:
            answer = await client.responses.create(model=model, input="hi", **FIXED)
        answers.append(answer.model_dump())
    direct, proxied = answers
    assert shape(proxied) == shape(direct)
    [sample] = recorder.samples
    assert (sample.outcome, sample.streamed, sample.ttft) == (Outcome.SUCCESS, False, None)
    assert sample.output_tokens == proxied["usage"]["output_tokens"] == 8
    assert sample.prompt_tokens == proxied["usage"]["input_tokens"]
    assert metric(proxy.state, "proxy_tokens_total", kind="completion") == 8


async def test_the_sync_client_streamed_and_not(proxy: RunningProxy) -> None:
    model = await model_of(proxy.url)

    def call() -> tuple[Any, list[Any]]:
        with sync_client(proxy.url) as client:
            whole = client.responses.create(model=model, input="hi", **FIXED)
            events = list(client.responses.create(model=model, input="hi", stream=True, **FIXED))
        return whole, events

    whole, events = await asyncio.to_thread(call)
    assert whole.usage is not None and whole.usage.output_tokens == 8
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta")
    await eventually(
        lambda: metric(proxy.state, "proxy_tokens_total", kind="completion") == 16,
        what="both answers counted",
    )


def test_the_plan_leaves_a_streamed_responses_body_alone() -> None:
    body = b'{"model": "m",  "input": "hi", "stream": true}'
    plan = plan_request("POST", "/v1/responses", body, ADMITTED_PATHS)
    assert (plan.admitted, plan.streamed, plan.strip_usage) == (True, True, False)
    assert plan.body is body


@asynccontextmanager
async def recording_upstream(events: bytes) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An upstream that keeps every request body as it arrived and streams `events`."""
    bodies: list[bytes] = []

    async def respond(request: web.Request) -> web.StreamResponse:
        bodies.append(await request.read())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(events)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/responses", respond)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", bodies
    finally:
        await runner.cleanup()


async def test_a_responses_stream_goes_both_ways_byte_for_byte(
    make_proxy: ProxyFactory, sim: SimHandle
) -> None:
    """No `stream_options` injected upstream, nothing stripped on the way back."""
    async with aiohttp.ClientSession() as http:
        body = {"input": "hi", "stream": True, "max_output_tokens": 3, "ignore_eos": True}
        async with http.post(f"{sim.url}/v1/responses", json=body) as resp:
            canned = await resp.read()  # a real simulator stream, replayed
    sent = b'{"model":"tiny-llama", "input":[{"role":"user","content":"hi"}],\n "stream":true}'
    headers = {"Content-Type": "application/json"}
    async with (
        recording_upstream(canned) as (upstream, bodies),
        make_proxy(upstream=upstream) as proxy,
        aiohttp.ClientSession() as http,
    ):
        recorder = record_samples(proxy)
        async with http.post(f"{proxy.url}/v1/responses", data=sent, headers=headers) as resp:
            received = await resp.read()
    assert bodies == [sent]
    assert received == canned
    await eventually(lambda: len(recorder.samples) == 1, what="the stream reported")
    [sample] = recorder.samples
    assert sample.streamed and sample.ttft is not None and sample.output_tokens == 3


async def test_a_cut_responses_stream_makes_the_sdk_raise(
    proxy: RunningProxy, sim: SimHandle
) -> None:
    recorder = record_samples(proxy)
    model = await model_of(proxy.url)
    sim.set_faults(cut_after_chunks=6)  # after the first deltas, before `response.completed`
    seen: list[str] = []
    async with async_client(proxy.url) as client:
        stream = await client.responses.create(
            model=model, input="hi", stream=True, max_output_tokens=200
        )
        with pytest.raises(openai.APIError, match="broke off"):
            async for event in stream:
                seen.append(event.type)
    assert "response.output_text.delta" in seen and "response.completed" not in seen
    await eventually(lambda: len(recorder.samples) == 1, what="the cut request reported")
    [sample] = recorder.samples
    assert (sample.outcome, sample.error) == (Outcome.OVERLOAD, UpstreamErrorKind.STREAM_CUT)


async def test_a_cut_stream_makes_the_sync_sdk_raise_too(
    proxy: RunningProxy, sim: SimHandle
) -> None:
    model = await model_of(proxy.url)
    sim.set_faults(cut_after_chunks=6)

    def call() -> None:
        with sync_client(proxy.url) as client:
            for _event in client.responses.create(
                model=model, input="hi", stream=True, max_output_tokens=200
            ):
                pass

    with pytest.raises(openai.APIError, match="broke off"):
        await asyncio.to_thread(call)


async def test_shedding_on_responses_is_a_429_the_sdk_retries(make_proxy: ProxyFactory) -> None:
    async with make_proxy(initial_limit=1, min_limit=1, max_limit=1, queue_size=0) as proxy:
        model = await model_of(proxy.url)
        async with async_client(proxy.url) as once, async_client(proxy.url, retries=5) as retrying:
            long = asyncio.create_task(
                once.responses.create(
                    model=model, input="hi", max_output_tokens=64, extra_body={"ignore_eos": True}
                )
            )
            await eventually(
                lambda: proxy.state.admission.limiter.inflight == 1, what="first admitted"
            )
            with pytest.raises(openai.RateLimitError) as shed:
                await once.responses.create(model=model, input="hi", **FIXED)
            assert shed.value.response.headers.get("Retry-After")
            assert shed.value.body is not None  # the OpenAI error object, parsed
            retried = await retrying.responses.create(model=model, input="hi", **FIXED)
            await long
    assert retried.usage is not None and retried.usage.output_tokens == 8
    shed_total = metric(proxy.state, "proxy_shed_total", reason="queue_full", priority="normal")
    assert shed_total >= 2
