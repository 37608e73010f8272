"""A small closed-loop load generator that measures what a streaming client sees.

Each of `concurrency` workers sends streamed chat requests back to back until a
request count or a time budget runs out. TTFT is the time to the first content
token; TPOT the mean time per output token after it, from vLLM's own token count
(`include_usage`), so a chunk carrying several tokens is counted right.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

PROMPT = "Write a short story about a lighthouse keeper and a storm."


@dataclass(frozen=True)
class Sample:
    started: float
    status: int
    ttft: float | None = None
    tpot: float | None = None
    e2e: float | None = None
    completion_tokens: int = 0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, the way a latency SLA is usually read."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


async def _one(
    session: aiohttp.ClientSession, url: str, model: str, max_tokens: int, prompt: str
) -> Sample:
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.monotonic()
    async with session.post(url + "/v1/chat/completions", json=payload) as response:
        if response.status != 200:
            await response.read()
            return Sample(started=started, status=response.status)
        first: float | None = None
        tokens = 0
        async for raw in response.content:
            line = raw.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            choices = chunk.get("choices") or []
            if first is None and choices and choices[0].get("delta", {}).get("content"):
                first = time.monotonic()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
        end = time.monotonic()
    if first is None:
        return Sample(started=started, status=response.status, e2e=end - started)
    tpot = (end - first) / (tokens - 1) if tokens > 1 else None
    return Sample(
        started=started,
        status=200,
        ttft=first - started,
        tpot=tpot,
        e2e=end - started,
        completion_tokens=tokens,
    )


async def run_load(
    url: str,
    model: str,
    concurrency: int,
    *,
    requests: int | None = None,
    duration: float | None = None,
    max_tokens: int = 64,
    prompt: str = PROMPT,
) -> list[Sample]:
    """Closed loop: stop after `requests` sent in all, or no new request after `duration` s."""
    if requests is None and duration is None:
        raise ValueError("bound the load by requests or duration")
    samples: list[Sample] = []
    sent = 0
    deadline = None if duration is None else time.monotonic() + duration

    def more() -> bool:
        if requests is not None and sent >= requests:
            return False
        return deadline is None or time.monotonic() < deadline

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while more():
            sent += 1
            samples.append(await _one(session, url, model, max_tokens, prompt))

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return samples
