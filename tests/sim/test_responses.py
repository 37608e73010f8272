"""The simulator's `/v1/responses`, shaped as vLLM 0.32 serves it, through the official
SDK (`client.responses.create`) and raw HTTP."""

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI, BadRequestError, InternalServerError, OpenAI

from proxy.sim import SimHandle
from proxy.sim.profiles import PROFILES
from tests.helpers.polling import eventually

MODEL = PROFILES["h100-llama3-8b"].served_model_name
MAX_MODEL_LEN = PROFILES["h100-llama3-8b"].max_model_len
FIXED: dict[str, Any] = {"max_output_tokens": 12, "extra_body": {"ignore_eos": True}}
# vLLM 0.32's events for one text answer, in order (deltas collapsed to one).
VLLM_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def client(sim: SimHandle) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{sim.url}/v1", api_key="unused", max_retries=0)


def collapsed(kinds: list[str]) -> list[str]:
    return [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]


async def raw_events(
    http: aiohttp.ClientSession, sim: SimHandle, body: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    async with http.post(f"{sim.url}/v1/responses", json={**body, "stream": True}) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        text = await resp.text()
    events = []
    for block in filter(None, text.split("\n\n")):
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


async def test_a_whole_answer_has_usage_and_stops_at_max_output_tokens(sim: SimHandle) -> None:
    async with client(sim) as c:
        answer = await c.responses.create(model=MODEL, input="Say something long.", **FIXED)
    assert answer.object == "response" and answer.id.startswith("resp_")
    assert answer.status == "incomplete"
    assert answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "max_output_tokens"
    assert len(answer.output_text.split()) == 12
    assert answer.usage is not None and answer.usage.output_tokens == 12
    assert answer.usage.total_tokens == answer.usage.input_tokens + 12
    assert answer.usage.output_tokens_details.reasoning_tokens == 0


async def test_a_stream_has_vllms_events_in_order_numbered_from_zero(sim: SimHandle) -> None:
    async with client(sim) as c:
        stream = await c.responses.create(model=MODEL, input="hello", stream=True, **FIXED)
        events = [event async for event in stream]
    assert collapsed([event.type for event in events]) == VLLM_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert text == done.text and len(text.split()) == 12
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == 12
    assert events[0].type == "response.created" and events[0].response.usage is None


async def test_raw_events_name_their_type_and_no_done_ends_them(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    events = await raw_events(http, sim, {"model": MODEL, "input": "hi", "max_output_tokens": 3})
    assert all(name == data["type"] for name, data in events)
    delta = next(data for name, data in events if name == "response.output_text.delta")
    assert list(delta) == [
        "content_index",
        "delta",
        "item_id",
        "logprobs",
        "output_index",
        "sequence_number",
        "type",
    ]


async def test_the_sync_client_streams_too(sim: SimHandle) -> None:
    def call() -> list[Any]:
        with OpenAI(base_url=f"{sim.url}/v1", api_key="unused", max_retries=0) as c:
            return list(c.responses.create(model=MODEL, input="hi", stream=True, **FIXED))

    events = await asyncio.to_thread(call)  # the simulator runs on this thread's loop
    assert events[-1].type == "response.completed"


async def test_instructions_and_a_message_list_are_prompt_tokens(sim: SimHandle) -> None:
    messages: Any = [
        {"role": "user", "content": "What is PagedAttention?"},
        {"role": "assistant", "content": "A way to page the KV cache."},
        {"role": "user", "content": [{"type": "input_text", "text": "Say more."}]},
    ]
    async with client(sim) as c:
        plain = await c.responses.create(model=MODEL, input="What is PagedAttention?", **FIXED)
        listed = await c.responses.create(model=MODEL, input=messages, **FIXED)
        briefed = await c.responses.create(
            model=MODEL, input=messages, instructions="Answer in one line.", **FIXED
        )
    assert plain.usage and listed.usage and briefed.usage
    assert plain.usage.input_tokens < listed.usage.input_tokens < briefed.usage.input_tokens
    assert briefed.instructions == "Answer in one line." and listed.instructions is None


async def test_without_max_output_tokens_the_context_left_is_the_cap(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "input": "hi", "stream": True}
    async with http.post(f"{sim.url}/v1/responses", json=body) as resp:
        first = await resp.content.readuntil(b"\n\n")
    created = json.loads(first.split(b"data: ", 1)[1])["response"]
    assert 0 < created["max_output_tokens"] < MAX_MODEL_LEN


async def test_more_output_than_the_context_is_400(sim: SimHandle) -> None:
    async with client(sim) as c:
        with pytest.raises(BadRequestError) as raised:
            await c.responses.create(model=MODEL, input="hi", max_output_tokens=MAX_MODEL_LEN + 1)
    assert "cannot be greater than max_model_len" in raised.value.message


async def test_an_injected_error_applies_to_responses(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    sim.set_faults(error_rate=1.0, error_status=500)
    async with client(sim) as c:
        with pytest.raises(InternalServerError):
            await c.responses.create(model=MODEL, input="hi", **FIXED)


async def test_a_cut_stream_ends_without_completed(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    sim.set_faults(cut_after_chunks=4)
    body = {"model": MODEL, "input": "hi", "max_output_tokens": 500, "stream": True}
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{sim.url}/v1/responses", json=body) as resp:
            async for data in resp.content.iter_any():
                received += data
    assert received.count(b"event: ") == 4 and b"response.completed" not in received
    await eventually(lambda: sim.engine.num_running == 0 and sim.engine.blocks.used == 0)


async def test_closing_a_stream_aborts_its_sequence(sim: SimHandle) -> None:
    sim.set_faults(slowdown=50.0)  # so the answer is surely still decoding
    engine = sim.engine
    body = {"model": MODEL, "input": "hi", "max_output_tokens": 4000, "stream": True}
    body["ignore_eos"] = True
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{sim.url}/v1/responses", json=body)
        await resp.content.readuntil(b"response.output_text.delta")
        assert engine.num_running == 1
        resp.close()
        await eventually(lambda: engine.num_running == 0)
    assert engine.blocks.used == 0 and engine.stats.aborted == 1
