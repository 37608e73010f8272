import time

import aiohttp

from proxy.load.client import first_model, request_body, send_request
from proxy.load.prompts import Prompt
from tests.helpers.stub import StubState, running_stub

PROMPT = Prompt(text="Why is the sky blue?")


async def test_chat_stream_is_timed_per_content_chunk_and_counted_from_usage() -> None:
    async with running_stub() as (url, state), aiohttp.ClientSession() as session:
        body = request_body("chat", "m", PROMPT, 5, ignore_eos=True)
        result = await send_request(session, url, "chat", body, time.perf_counter, 10)
    assert result.ok and result.status == 200
    assert result.output_tokens == 5 and result.prompt_tokens == 7
    assert len(result.itl) == 4  # gaps between 5 content chunks; the role chunk is not one
    assert result.ttft is not None and 0 < result.ttft <= result.e2e
    sent = state.bodies[0]
    assert sent["stream_options"] == {"include_usage": True} and sent["ignore_eos"] is True
    assert sent["messages"] == [{"role": "user", "content": "Why is the sky blue?"}]


async def test_completions_api_sends_a_prompt_string() -> None:
    async with running_stub() as (url, state), aiohttp.ClientSession() as session:
        body = request_body("completions", "m", PROMPT, 3, ignore_eos=False)
        result = await send_request(session, url, "completions", body, time.perf_counter, 10)
    assert result.ok and result.output_tokens == 3
    assert state.bodies[0]["prompt"] == "Why is the sky blue?"
    assert "ignore_eos" not in state.bodies[0]


async def test_without_usage_tokens_are_the_content_chunks() -> None:
    async with running_stub(StubState(omit_usage=True)) as (url, _), aiohttp.ClientSession() as s:
        body = request_body("chat", "m", PROMPT, 4, ignore_eos=True)
        result = await send_request(s, url, "chat", body, time.perf_counter, 10)
    assert result.ok and result.output_tokens == 4


async def test_error_status_is_a_failure_keyed_by_status() -> None:
    state = StubState(fail_every=1, fail_status=503)
    async with running_stub(state) as (url, _), aiohttp.ClientSession() as session:
        body = request_body("chat", "m", PROMPT, 4, ignore_eos=True)
        result = await send_request(session, url, "chat", body, time.perf_counter, 10)
    assert not result.ok and result.failure_key == "503"


async def test_stream_without_done_is_a_cut() -> None:
    async with running_stub(StubState(cut_after=2)) as (url, _), aiohttp.ClientSession() as s:
        body = request_body("chat", "m", PROMPT, 8, ignore_eos=True)
        result = await send_request(s, url, "chat", body, time.perf_counter, 10)
    assert not result.ok and result.failure_key == "stream_cut"


async def test_unreachable_endpoint_is_a_connect_failure() -> None:
    async with running_stub() as (url, _):
        pass  # the port is free again once the stub stops
    async with aiohttp.ClientSession() as session:
        body = request_body("chat", "m", PROMPT, 4, ignore_eos=True)
        result = await send_request(session, url, "chat", body, time.perf_counter, 10)
    assert not result.ok and result.status is None and result.failure_key == "connect"


async def test_default_model_is_the_first_listed() -> None:
    async with running_stub() as (url, _), aiohttp.ClientSession() as session:
        assert await first_model(session, url, 10) == "stub-model"
