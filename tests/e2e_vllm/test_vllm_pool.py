"""A mixed pool: the real vLLM and a simulator behind one proxy (two `--upstream`).

Both members must get traffic through the official OpenAI SDK, and every answer must be
whole and come from one member: the simulator's text is its fixed word cycle
(`token_text`), so an answer is told apart by its text, and the counts must equal what
each engine says it finished (`vllm:request_success_total`, which both export). Answers
from vLLM carry vLLM's own prompt token count. Then the simulator dies: new requests
fail over to vLLM before any byte was sent, and none fails.

Runs under `make e2e-vllm` (one real vLLM, started by run.sh); needs the pool (issue 13).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest
from e2e_vllm_process import proxy_process
from e2e_vllm_support import Endpoints, get_text, vllm_metric, wait_for
from openai import AsyncOpenAI

from proxy.sim.protocol import token_text

Kind = Literal["chat", "completions"]
KINDS: list[Kind] = ["chat", "completions"]
PROMPT = "Name the rivers that cross the plain."
MAX_TOKENS = 8
FIXED: dict[str, Any] = {
    "max_tokens": MAX_TOKENS,
    "temperature": 0,
    "extra_body": {"ignore_eos": True},
}
SIM_TEXT = token_text(0, MAX_TOKENS)  # what the simulator answers to MAX_TOKENS tokens
CONCURRENCY = 16  # twice a member's initial limit: neither member alone has room for all
ROUNDS = 3
FINISHED = "vllm:request_success_total"


@contextlib.asynccontextmanager
async def _simulator(
    model: str, log: Path
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`sla-proxy sim` (the cpu-tiny profile, serving the real model's name) on a free port."""
    command = [sys.executable, "-m", "proxy", "sim", "--port", "0", "--profile", "cpu-tiny"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            stdin=asyncio.subprocess.DEVNULL,
        )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "listening on http://" in line, f"the simulator did not start: {line!r}"
        url = line.rsplit(" ", 1)[-1].strip()
        status, body = await get_text(url + "/v1/models")
        assert status == 200 and f'"{model}"' in body, "the simulator serves the model's name"
        yield url, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def _pool(endpoints: Endpoints, name: str) -> AsyncIterator[tuple[Any, str, Any]]:
    """The simulator, then a proxy with two named upstreams: `vllm` and `sim`."""
    logs = Path(endpoints.logs)
    async with _simulator(endpoints.model, logs / f"sim-{name}.log") as (sim_url, sim):
        options = ["--upstream", f"sim={sim_url}"]
        async with proxy_process(
            f"vllm={endpoints.vllm}", options, logs / f"proxy-{name}.log"
        ) as proxy:
            yield proxy, sim_url, sim


async def _create(client: AsyncOpenAI, kind: Kind, model: str, stream: bool) -> tuple[str, Any]:
    """(text, usage) of one answer; a stream is read to its end."""
    options: dict[str, Any] = dict(FIXED)
    if stream:
        options |= {"stream": True, "stream_options": {"include_usage": True}}
    if kind == "chat":
        answer: Any = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], **options
        )
    else:
        answer = await client.completions.create(model=model, prompt=PROMPT, **options)
    if not stream:
        choice = answer.choices[0]
        assert choice.finish_reason == "length"
        text = choice.message.content if kind == "chat" else choice.text
        return str(text or ""), answer.usage
    parts, usage, finish = [], None, None
    async for chunk in answer:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            parts.append((choice.delta.content if kind == "chat" else choice.text) or "")
            finish = choice.finish_reason or finish
    assert finish == "length"
    return "".join(parts), usage


async def _status(admin: str) -> dict[str, Any]:
    status, body = await get_text(admin + "/status")
    assert status == 200, body
    loaded: dict[str, Any] = json.loads(body)
    return loaded


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", KINDS)
async def test_both_members_answer_whole_through_the_sdk(
    kind: Kind, stream: bool, endpoints: Endpoints
) -> None:
    async with AsyncOpenAI(base_url=endpoints.vllm + "/v1", api_key="e2e", max_retries=0) as direct:
        _, reference = await _create(direct, kind, endpoints.model, stream=False)
    async with _pool(endpoints, f"{kind}-{'stream' if stream else 'whole'}") as (proxy, sim_url, _):
        before = {
            "vllm": await vllm_metric(endpoints.vllm, FINISHED),
            "sim": await vllm_metric(sim_url, FINISHED),
        }
        # No retries: a retried request would count twice at the engines.
        async with AsyncOpenAI(
            base_url=proxy.url + "/v1", api_key="e2e", max_retries=0, timeout=120
        ) as client:
            answers = []
            for _ in range(ROUNDS):
                answers += await asyncio.gather(
                    *(_create(client, kind, endpoints.model, stream) for _ in range(CONCURRENCY))
                )
        served = {"vllm": 0, "sim": 0}
        for text, usage in answers:
            assert usage is not None and usage.completion_tokens == MAX_TOKENS, usage
            if text == SIM_TEXT:
                served["sim"] += 1
            else:  # vLLM's own tokenizer counted the prompt: the same count as directly
                assert text, "an empty answer"
                assert usage.prompt_tokens == reference.prompt_tokens, (text, usage)
                served["vllm"] += 1

        async def counted() -> bool:
            finished = {
                "vllm": await vllm_metric(endpoints.vllm, FINISHED) - before["vllm"],
                "sim": await vllm_metric(sim_url, FINISHED) - before["sim"],
            }
            return finished == served

        assert served["vllm"] > 0 and served["sim"] > 0, served
        assert await wait_for(counted, within=10), f"engines' counts differ from {served}"
        members = {m["name"]: m for m in (await _status(proxy.admin))["upstreams"]}
        assert set(members) == {"vllm", "sim"}
        assert {name: m["requests"] for name, m in members.items()} == served
        assert all(m["up"] for m in members.values()), members


async def test_a_dead_simulator_leaves_vllm_serving_every_request(endpoints: Endpoints) -> None:
    async with _pool(endpoints, "member-dies") as (proxy, _, sim):
        async with AsyncOpenAI(
            base_url=proxy.url + "/v1", api_key="e2e", max_retries=0, timeout=120
        ) as client:
            warm = await asyncio.gather(
                *(
                    _create(client, "completions", endpoints.model, False)
                    for _ in range(CONCURRENCY)
                )
            )
            assert any(text == SIM_TEXT for text, _ in warm), "the simulator took no traffic"
            sim.send_signal(signal.SIGTERM)  # its port now refuses connections
            await asyncio.wait_for(sim.wait(), 10)
            # Connect failures happen before any byte went upstream: retried on vLLM.
            after = await asyncio.gather(
                *(
                    _create(client, "completions", endpoints.model, False)
                    for _ in range(CONCURRENCY)
                )
            )
        assert all(text != SIM_TEXT for text, _ in after)
        assert all(usage.completion_tokens == MAX_TOKENS for _, usage in after)

        async def ejected() -> bool:
            members = {m["name"]: m for m in (await _status(proxy.admin))["upstreams"]}
            return not members["sim"]["up"] and members["vllm"]["up"]

        assert await wait_for(ejected, within=10), await _status(proxy.admin)
