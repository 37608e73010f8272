"""The Responses API (`/v1/responses`) against the real vLLM, through the proxy, with the
official SDK (`client.responses.create`, sync and async, streamed and not).

- through the proxy the answer and its events equal vLLM's direct;
- the simulator's `/v1/responses` has vLLM's shape: the same events in the same order,
  the same fields in the same order with values of the same types;
- what the proxy recorded (its /metrics: TTFT, TPOT, tokens) is what the client measured,
  for a Responses stream as for a chat stream;
- a client that leaves mid-stream makes vLLM abort the request;
- a request the proxy sheds gets 429 + Retry-After, and the SDK retries it by itself.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
from e2e_vllm_process import proxy_process
from e2e_vllm_support import Endpoints, post_json, typed_events, vllm_metric, wait_for
from openai import AsyncOpenAI, OpenAI

from proxy.sim.app import running_sim

MAX_TOKENS = 12
FIXED: dict[str, Any] = {
    "max_output_tokens": MAX_TOKENS,
    "temperature": 0,
    "extra_body": {"ignore_eos": True},
}
INPUT = "Count the lighthouses on the northern coast."
MESSAGES: Any = [
    {"role": "user", "content": INPUT},
    {"role": "assistant", "content": "There are seven."},
    {"role": "user", "content": [{"type": "input_text", "text": "Name them."}]},
]


def shape(value: Any) -> Any:
    """Keys in order and value types, not the values."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def collapsed(events: list[dict[str, Any]]) -> list[str]:
    """Event types with runs of deltas collapsed (how tokens batch into events varies)."""
    kinds = [event["type"] for event in events]
    return [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]


def first_of_each(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {kind: shape(next(e for e in events if e["type"] == kind)) for kind in collapsed(events)}


def _payload(model: str, **fields: Any) -> dict[str, Any]:
    body = {"model": model, "input": INPUT, "max_output_tokens": MAX_TOKENS, "temperature": 0}
    return {**body, "ignore_eos": True, **fields}


def test_answer_and_usage_equal_vllms(
    direct: OpenAI, proxied: OpenAI, endpoints: Endpoints
) -> None:
    reference = direct.responses.create(model=endpoints.model, input=MESSAGES, **FIXED)
    answer = proxied.responses.create(model=endpoints.model, input=MESSAGES, **FIXED)
    assert shape(answer.model_dump()) == shape(reference.model_dump())
    assert answer.output_text == reference.output_text  # greedy: the same text
    assert answer.usage is not None and reference.usage is not None
    assert answer.usage.model_dump() == reference.usage.model_dump()
    assert answer.usage.output_tokens == MAX_TOKENS
    assert answer.status == "incomplete"  # stopped by max_output_tokens, as vLLM says


async def test_streamed_events_equal_vllms(endpoints: Endpoints) -> None:
    payload = _payload(endpoints.model, stream=True, instructions="Be brief.")
    reference = await typed_events(endpoints.vllm, payload)
    events = await typed_events(endpoints.proxy, payload)
    assert collapsed(events) == collapsed(reference)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert first_of_each(events) == first_of_each(reference)
    assert events[-1]["response"]["usage"] == reference[-1]["response"]["usage"]


async def test_the_async_sdk_streams_through_the_proxy(endpoints: Endpoints) -> None:
    async with AsyncOpenAI(base_url=endpoints.proxy + "/v1", api_key="e2e", max_retries=0) as c:
        stream = await c.responses.create(model=endpoints.model, input=INPUT, stream=True, **FIXED)
        events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.output_tokens == MAX_TOKENS


@pytest.mark.parametrize("messages", [False, True], ids=["text-input", "message-list"])
async def test_the_simulators_responses_have_vllms_shape(
    messages: bool, endpoints: Endpoints
) -> None:
    fields = {"input": MESSAGES, "instructions": "Be brief."} if messages else {}
    whole = _payload(endpoints.model, **fields)
    async with running_sim(profile="cpu-tiny", speed=20, seed=1) as sim:
        assert sim.engine.profile.served_model_name == endpoints.model
        vllm_body = (await post_json(endpoints.vllm, "/v1/responses", whole)).json()
        sim_body = (await post_json(sim.url, "/v1/responses", whole)).json()
        vllm_events = await typed_events(endpoints.vllm, {**whole, "stream": True})
        sim_events = await typed_events(sim.url, {**whole, "stream": True})
    assert shape(sim_body) == shape(vllm_body)
    assert sim_body["status"] == vllm_body["status"] == "incomplete"
    assert collapsed(sim_events) == collapsed(vllm_events)
    assert first_of_each(sim_events) == first_of_each(vllm_events)


# --- what the proxy records ---------------------------------------------------------------

Route = Literal["chat", "responses"]
RECORDED_TOKENS = 32


@dataclass(frozen=True)
class Seen:
    """One streamed request as its client measured it, in seconds from the call."""

    first_event: float
    ttft: float
    tpot: float
    tokens: int


def _long_unique_prompt() -> str:
    # ~1,200 tokens that no earlier request shares (vLLM caches prefixes): the prefill is
    # then most of the TTFT, so the answer's first event comes well before its first text.
    return f"{time.time_ns()} " + "lighthouse " * 300


def _measure(client: OpenAI, route: Route, model: str) -> Seen:
    start = time.perf_counter()
    first = 0.0
    content: list[float] = []
    tokens = 0
    if route == "responses":
        for event in client.responses.create(
            model=model,
            input=_long_unique_prompt(),
            max_output_tokens=RECORDED_TOKENS,
            stream=True,
            temperature=0,
            extra_body={"ignore_eos": True},
        ):
            now = time.perf_counter()
            first = first or now
            if event.type == "response.output_text.delta":
                content.append(now)
            elif event.type == "response.completed" and event.response.usage is not None:
                tokens = event.response.usage.output_tokens
    else:
        for chunk in client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": _long_unique_prompt()}],
            max_tokens=RECORDED_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
            temperature=0,
            extra_body={"ignore_eos": True},
        ):
            now = time.perf_counter()
            first = first or now
            if chunk.choices and chunk.choices[0].delta.content:
                content.append(now)
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
    tpot = (content[-1] - content[0]) / (tokens - 1)
    return Seen(first - start, content[0] - start, tpot, tokens)


async def _recorded(admin: str) -> dict[str, float]:
    names = ("proxy_ttft_seconds_sum", "proxy_ttft_seconds_count", "proxy_tpot_seconds_sum")
    values = {name: await vllm_metric(admin, name) for name in names}
    values["tokens"] = await vllm_metric(admin, "proxy_tokens_total", kind="completion")
    return values


@pytest.mark.parametrize("route", ["responses", "chat"])
async def test_recorded_ttft_tokens_and_tpot_are_what_the_client_measured(
    route: Route, proxied: OpenAI, endpoints: Endpoints
) -> None:
    """The TTFT bound is causal: the proxy's clock starts after the client's and sees the
    first text first. A Responses answer's first event (`response.created`) goes out
    before the prefill, so a proxy that took it for the first token would fall below the
    client's first-event time. TTFT and TPOT are timed from both ends over the same
    events, so only the relay's jitter separates them."""
    await asyncio.to_thread(_measure, proxied, route, endpoints.model)  # SDK set-up paid
    before = await _recorded(endpoints.admin)
    seen = await asyncio.to_thread(_measure, proxied, route, endpoints.model)

    async def reported() -> bool:
        count = await vllm_metric(endpoints.admin, "proxy_ttft_seconds_count")
        return count == before["proxy_ttft_seconds_count"] + 1

    assert await wait_for(reported, within=10), "the proxy recorded the request"
    after = await _recorded(endpoints.admin)
    ttft = after["proxy_ttft_seconds_sum"] - before["proxy_ttft_seconds_sum"]
    tpot = after["proxy_tpot_seconds_sum"] - before["proxy_tpot_seconds_sum"]
    assert after["tokens"] - before["tokens"] == seen.tokens == RECORDED_TOKENS
    assert ttft <= seen.ttft
    assert ttft == pytest.approx(seen.ttft, rel=0.25)
    if route == "responses":  # vLLM sends chat's first chunk with the first text
        assert seen.first_event < ttft
    assert tpot == pytest.approx(seen.tpot, rel=0.25)


async def test_a_whole_responses_answer_counts_its_tokens_without_a_ttft(
    proxied: OpenAI, endpoints: Endpoints
) -> None:
    before = await _recorded(endpoints.admin)
    # A whole answer is recorded before its body goes out: no need to wait for it.
    answer = await asyncio.to_thread(
        proxied.responses.create, model=endpoints.model, input=INPUT, **FIXED
    )
    after = await _recorded(endpoints.admin)
    assert answer.usage is not None
    assert after["tokens"] - before["tokens"] == answer.usage.output_tokens == MAX_TOKENS
    assert after["proxy_ttft_seconds_count"] == before["proxy_ttft_seconds_count"]


# --- disconnect and shedding ----------------------------------------------------------------


async def test_client_disconnect_aborts_the_vllm_request(endpoints: Endpoints) -> None:
    async def running() -> float:
        return await vllm_metric(endpoints.vllm, "vllm:num_requests_running")

    async def idle() -> bool:
        return await running() == 0

    async def busy() -> bool:
        return await running() == 1

    async def completed() -> float:
        return await vllm_metric(endpoints.vllm, "vllm:request_success_total")

    assert await wait_for(idle, within=30), "vLLM was idle before the check"
    completed_before = await completed()
    async with AsyncOpenAI(base_url=endpoints.proxy + "/v1", api_key="e2e", max_retries=0) as c:
        stream = await c.responses.create(
            model=endpoints.model,
            input=INPUT,
            stream=True,
            # Long enough that vLLM would go on decoding well past the deadlines below.
            max_output_tokens=endpoints.max_model_len - 64,
            extra_body={"ignore_eos": True},
        )
        deltas = 0
        async for event in stream:
            deltas += event.type == "response.output_text.delta"
            if deltas == 3:
                break
        assert await wait_for(busy, within=5), "the request was running at vLLM mid-stream"
        await stream.close()
    assert await wait_for(idle, within=5), "vLLM still decoding after the client left"
    assert await completed() == completed_before, "vLLM finished the request instead"


async def test_a_shed_responses_request_is_429_and_the_sdk_retries_it(
    endpoints: Endpoints,
) -> None:
    options = ["--initial-limit", "1", "--min-limit", "1", "--max-limit", "1", "--queue-size", "0"]
    log = Path(endpoints.logs) / "proxy-responses-shed.log"
    async with proxy_process(endpoints.vllm, options, log) as proxy:

        def client(retries: int) -> AsyncOpenAI:
            return AsyncOpenAI(base_url=proxy.url + "/v1", api_key="e2e", max_retries=retries)

        async def shed_count() -> float:
            return await vllm_metric(proxy.admin, "proxy_shed_total", reason="queue_full")

        async with client(0) as once, client(8) as retrying:
            holder = await once.responses.create(
                model=endpoints.model,
                input=INPUT,
                stream=True,
                max_output_tokens=endpoints.max_model_len - 64,
                extra_body={"ignore_eos": True},
            )
            await anext(aiter(holder))  # admitted and streaming: the one permit is taken
            with pytest.raises(openai.RateLimitError) as shed:
                await once.responses.create(model=endpoints.model, input=INPUT, **FIXED)
            assert float(shed.value.response.headers["Retry-After"]) > 0
            assert shed.value.code is not None  # the OpenAI error object, parsed
            retried = asyncio.create_task(
                retrying.responses.create(model=endpoints.model, input=INPUT, **FIXED)
            )

            async def shed_again() -> bool:
                return await shed_count() >= 2

            assert await wait_for(shed_again, within=10), "the retrying client was shed too"
            await holder.close()  # the permit frees; the SDK's next retry gets in
            answer = await retried
    assert answer.usage is not None and answer.usage.output_tokens == MAX_TOKENS
