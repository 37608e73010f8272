"""One streamed request, timed chunk by chunk.

aiohttp rather than the `openai` SDK: a sweep runs up to hundreds of streams on two
cores, and the SDK's per-request object building costs client CPU that would show
up as server latency; aiohttp also hands over each SSE line the moment it arrives,
so chunk timestamps are what the wire delivered (vLLM's own `bench serve` uses
aiohttp for the same reason).

What is measured (seconds, from just before the request is sent):
- ttft: first chunk that carries generated text (role-only chunks do not count);
- itl: gaps between successive text-carrying chunks;
- e2e: until the stream ends (`[DONE]` or the body closes);
- output_tokens: `usage.completion_tokens` from `stream_options.include_usage`,
  falling back to the number of text chunks when the server sends no usage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from proxy.load.prompts import Prompt

Api = Literal["chat", "completions"]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RequestResult:
    ok: bool
    status: int | None  # HTTP status; None when no answer arrived
    error: str | None  # None when ok; else "http", "connect", "timeout", "stream_cut", ...
    start: float  # clock reading when the request was sent
    e2e: float
    ttft: float | None = None
    itl: tuple[float, ...] = field(default=())
    output_tokens: int = 0
    prompt_tokens: int | None = None

    @property
    def failure_key(self) -> str:
        """How failures are counted: by HTTP status, else by what went wrong."""
        if self.status is not None and self.status != 200:
            return str(self.status)
        return self.error or "unknown"

    @property
    def tpot(self) -> float | None:
        """(e2e - ttft) / (output_tokens - 1), as vLLM's benchmark defines it."""
        if self.ttft is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


def request_body(
    api: Api, model: str, prompt: Prompt, max_tokens: int, ignore_eos: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
    }
    if ignore_eos:
        body["ignore_eos"] = True  # vLLM extension: output is exactly max_tokens long
    if api == "chat":
        body["messages"] = prompt.as_messages()
    else:
        body["prompt"] = prompt.as_text()
    return body


def _chunk_text(api: Api, choice: dict[str, Any]) -> str:
    if api == "chat":
        delta = choice.get("delta") or {}
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


async def send_request(
    session: aiohttp.ClientSession,
    base_url: str,
    api: Api,
    body: dict[str, Any],
    clock: Clock,
    limit_seconds: float,
) -> RequestResult:
    path = "/v1/chat/completions" if api == "chat" else "/v1/completions"
    start = clock()
    ttft: float | None = None
    last: float | None = None
    itl: list[float] = []
    text_chunks = 0
    usage: dict[str, Any] | None = None
    status: int | None = None

    def failed(error: str) -> RequestResult:
        return RequestResult(
            False, status, error, start, clock() - start, ttft, tuple(itl), text_chunks
        )

    try:
        async with asyncio.timeout(limit_seconds):
            async with session.post(base_url.rstrip("/") + path, json=body) as response:
                status = response.status
                if status != 200:
                    await response.read()
                    return failed("http")
                done = False
                async for raw in response.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    now = clock()
                    data = json.loads(payload)
                    if data.get("error"):
                        return failed("stream_error")  # vLLM reports mid-stream failures so
                    if data.get("usage"):
                        usage = data["usage"]
                    choices = data.get("choices") or []
                    if choices and _chunk_text(api, choices[0]):
                        if ttft is None:
                            ttft = now - start
                        elif last is not None:
                            itl.append(now - last)
                        last = now
                        text_chunks += 1
                if not done:
                    return failed("stream_cut")
    except TimeoutError:
        return failed("timeout")
    except aiohttp.ClientPayloadError:
        return failed("stream_cut")
    except aiohttp.ClientConnectorError:
        return failed("connect")  # no connection was made
    except aiohttp.ServerDisconnectedError:
        return failed("stream_cut" if status is not None else "disconnected")
    except aiohttp.ClientConnectionError:
        return failed("connection")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return failed("bad_stream")
    e2e = clock() - start
    tokens = int(usage.get("completion_tokens") or 0) if usage else 0
    prompt_tokens = usage.get("prompt_tokens") if usage else None
    return RequestResult(
        True,
        status,
        None,
        start,
        e2e,
        ttft,
        tuple(itl),
        tokens or text_chunks,
        int(prompt_tokens) if prompt_tokens is not None else None,
    )


async def first_model(session: aiohttp.ClientSession, base_url: str, limit_seconds: float) -> str:
    """The first model `/v1/models` lists: what `--model` defaults to."""
    async with asyncio.timeout(limit_seconds):
        async with session.get(base_url.rstrip("/") + "/v1/models") as response:
            response.raise_for_status()
            data = await response.json()
    models = data.get("data") or []
    if not models:
        raise ValueError(f"{base_url} lists no models")
    return str(models[0]["id"])
