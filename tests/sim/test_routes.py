"""vLLM's OpenAI routes, exercised with the official SDK and with raw HTTP."""

import json

import aiohttp
import pytest
from openai import AsyncOpenAI, BadRequestError, NotFoundError

from proxy.sim import SimHandle
from proxy.sim.profiles import PROFILES

MODEL = PROFILES["h100-llama3-8b"].served_model_name


def client(sim: SimHandle) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{sim.url}/v1", api_key="unused", max_retries=0)


async def test_lists_the_served_model(sim: SimHandle) -> None:
    async with client(sim) as c:
        models = await c.models.list()
    assert [m.id for m in models.data] == [MODEL]


async def test_chat_completion_with_ignore_eos_has_exactly_max_tokens(sim: SimHandle) -> None:
    async with client(sim) as c:
        reply = await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Say something long."}],
            max_tokens=40,
            extra_body={"ignore_eos": True},
        )
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 40
    content = reply.choices[0].message.content or ""
    assert len(content.split()) == 40
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 40


async def test_streamed_chat_with_include_usage_ends_with_a_usage_only_chunk(
    sim: SimHandle,
) -> None:
    async with client(sim) as c:
        stream = await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=30,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        chunks = [chunk async for chunk in stream]
    *content, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 30
    assert all(chunk.usage is None for chunk in content)
    assert content[0].choices[0].delta.role == "assistant"
    assert content[-1].choices[0].finish_reason == "length"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in content)
    assert len(text.split()) == 30


async def test_completion_counts_token_id_prompts_exactly(sim: SimHandle) -> None:
    async with client(sim) as c:
        reply = await c.completions.create(
            model=MODEL, prompt=list(range(123)), max_tokens=5, extra_body={"ignore_eos": True}
        )
    assert reply.object == "text_completion"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (123, 5)


async def test_streamed_completion_ends_with_done(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 20, "stream": True}
    async with http.post(f"{sim.url}/v1/completions", json=body) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in (await resp.text()).split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(c["object"] == "text_completion" and "usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


async def test_unknown_model_is_404_in_vllm_error_shape(sim: SimHandle) -> None:
    async with client(sim) as c:
        with pytest.raises(NotFoundError) as caught:
            await c.chat.completions.create(
                model="gpt-nope", messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.body == {
        "message": "The model `gpt-nope` does not exist.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }


async def test_prompt_longer_than_max_model_len_is_400(sim: SimHandle) -> None:
    async with client(sim) as c:
        with pytest.raises(BadRequestError, match="maximum context length"):
            await c.completions.create(model=MODEL, prompt=list(range(9000)), max_tokens=1)


async def test_malformed_json_is_400(sim: SimHandle, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sim.url}/v1/chat/completions", data=b"{not json") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == 400


async def test_unknown_route_is_404(sim: SimHandle, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sim.url}/v1/nothing-here") as resp:
        assert resp.status == 404


async def test_health_is_200(sim: SimHandle, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sim.url}/health") as resp:
        assert resp.status == 200


async def test_metrics_use_vllm_names_with_model_label(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "prompt": "hi", "max_tokens": 3}
    async with http.post(f"{sim.url}/v1/completions", json=body) as resp:
        assert resp.status == 200
    async with http.get(f"{sim.url}/metrics") as resp:
        text = await resp.text()
    label = f'model_name="{MODEL}"'
    for name in (
        "vllm:num_requests_running{",
        "vllm:num_requests_waiting{",
        "vllm:kv_cache_usage_perc{",
        "vllm:num_preemptions_total{",
        "vllm:prompt_tokens_total{",
        "vllm:generation_tokens_total{",
        "vllm:time_to_first_token_seconds_bucket{",
        "vllm:inter_token_latency_seconds_bucket{",
        "vllm:e2e_request_latency_seconds_count{",
    ):
        line = next(line for line in text.splitlines() if line.startswith(name))
        assert label in line
    assert f'vllm:generation_tokens_total{{engine="0",{label}}} 3.0' in text
    info = next(line for line in text.splitlines() if line.startswith("vllm:cache_config_info{"))
    assert 'block_size="16"' in info
    assert f'num_gpu_blocks="{sim.engine.blocks.num_blocks}"' in info


async def test_stream_options_without_stream_is_400(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "prompt": "hi", "stream_options": {"include_usage": True}}
    async with http.post(f"{sim.url}/v1/completions", json=body) as resp:
        assert resp.status == 400


async def test_completions_default_to_16_tokens(
    sim: SimHandle, http: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "prompt": "hi", "ignore_eos": True}
    async with http.post(f"{sim.url}/v1/completions", json=body) as resp:
        assert (await resp.json())["usage"]["completion_tokens"] == 16
