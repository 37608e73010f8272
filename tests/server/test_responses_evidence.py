"""A Responses client and a chat client under the same load feed the controller the same
kind of evidence, and it is what each client measured.

Both kinds of request stream through one proxy to one simulator at once. Each sample the
proxy records is compared with its client's own clock (same process, same
`perf_counter`). Two bounds on TTFT are causal: the proxy starts its clock after the
client sent the request and sees the first content event before the client does, so its
TTFT is at most the client's; and a Responses answer's first event (`response.created`)
goes out before prefill, which a long prompt makes the bulk of the TTFT, so a proxy that
took the first byte for the first token would fall below the client's first-event time
(once the SDK's one-off set-up is paid, so the client reads each event as it comes).
TTFT and TPOT, timed from both ends over the same events, agree within a quarter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai
import pytest

from proxy.core.outcome import Outcome
from proxy.sim.app import SimHandle, running_sim
from tests.helpers.polling import eventually
from tests.helpers.samples import record_samples
from tests.helpers.settings import ProxyFactory

# ~1,500 prompt tokens: at twice real time the simulated CPU prefills them in ~150 ms,
# while the first event of an answer takes a millisecond or two.
PROMPT = "word " * 1200
PINNED = {"initial_limit": 16, "min_limit": 16, "max_limit": 16}  # nobody queues


@pytest.fixture
async def slow_sim() -> AsyncIterator[SimHandle]:
    async with running_sim(profile="cpu-tiny", speed=2.0, seed=1) as handle:
        yield handle


@dataclass(frozen=True)
class Seen:
    """What one client measured, in seconds from its call."""

    route: str
    tokens: int
    first_event: float
    ttft: float  # first content event
    tpot: float  # first to last content event, per token after the first


def _seen(route: str, tokens: int, start: float, first: float, content: list[float]) -> Seen:
    return Seen(
        route,
        tokens,
        first - start,
        content[0] - start,
        (content[-1] - content[0]) / (tokens - 1),
    )


async def chat(client: openai.AsyncOpenAI, model: str, tokens: int) -> Seen:
    start = time.perf_counter()
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=tokens,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    first, content, text = 0.0, [], ""
    async for chunk in stream:
        now = time.perf_counter()
        first = first or now
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if delta:
            content.append(now)
            text += delta
    assert len(text.split()) == tokens  # one word per simulated token
    return _seen("chat", tokens, start, first, content)


async def responses(client: openai.AsyncOpenAI, model: str, tokens: int) -> Seen:
    start = time.perf_counter()
    stream = await client.responses.create(
        model=model,
        input=PROMPT,
        max_output_tokens=tokens,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    first, content, usage = 0.0, [], None
    async for event in stream:
        now = time.perf_counter()
        first = first or now
        if event.type == "response.output_text.delta":
            content.append(now)
        elif event.type == "response.completed":
            usage = event.response.usage
    assert usage is not None and usage.output_tokens == tokens
    return _seen("responses", tokens, start, first, content)


async def test_chat_and_responses_under_one_load_record_what_their_clients_saw(
    make_proxy: ProxyFactory, slow_sim: SimHandle
) -> None:
    model = slow_sim.engine.profile.served_model_name
    async with make_proxy(upstream=slow_sim.url, **PINNED) as proxy:
        recorder = record_samples(proxy)
        async with openai.AsyncOpenAI(
            base_url=f"{proxy.url}/v1", api_key="test", max_retries=0
        ) as client:
            # The SDK builds its event models on first use (~0.1 s of this loop): pay that
            # before anything is timed.
            await chat(client, model, 2)
            await responses(client, model, 2)
            await eventually(lambda: len(recorder.samples) == 2, what="warm-up reported")
            recorder.samples.clear()
            # Distinct lengths tell the samples apart.
            seens = await asyncio.gather(
                *(chat(client, model, 16 + 2 * i) for i in range(3)),
                *(responses(client, model, 17 + 2 * i) for i in range(3)),
            )
            await eventually(lambda: len(recorder.samples) == 6, what="all reported")
    by_tokens = {sample.output_tokens: sample for sample in recorder.samples}
    assert sorted(by_tokens) == sorted(seen.tokens for seen in seens)
    for seen in seens:
        sample = by_tokens[seen.tokens]
        assert (sample.outcome, sample.streamed) == (Outcome.SUCCESS, True), seen.route
        assert sample.ttft is not None and sample.tpot is not None, seen.route
        assert sample.ttft <= seen.ttft, seen.route
        assert sample.ttft == pytest.approx(seen.ttft, rel=0.25), seen.route
        if seen.route == "responses":
            assert seen.first_event < sample.ttft
        assert sample.tpot == pytest.approx(seen.tpot, rel=0.25), seen.route
    # The same evidence for the controller: every signal, from both routes.
    assert {tuple(v is not None for v in s.values().values()) for s in recorder.samples} == {
        (True, True, True)
    }
