"""Helpers of the end-to-end checks: where things run, raw HTTP, vLLM's metrics, polling.

Raw HTTP goes through aiohttp (a project dependency) rather than the OpenAI SDK where
the exact status, body and server-sent events matter, since the SDK hides them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

ENV_VLLM_URL = "SLA_PROXY_VLLM_URL"
SKIP_REASON = f"needs a real vLLM: run `make e2e-vllm` (sets {ENV_VLLM_URL})"


@dataclass(frozen=True)
class Endpoints:
    """What the driver (run.sh) started, from its environment variables."""

    vllm: str
    proxy: str
    admin: str
    model: str
    max_model_len: int
    logs: Path
    # Root of the process tree that is "ours" (driver, vLLM, proxies, pytest).
    driver_pid: int

    @classmethod
    def from_env(cls) -> Endpoints:
        env = os.environ
        return cls(
            vllm=env[ENV_VLLM_URL],
            proxy=env["SLA_PROXY_URL"],
            admin=env["SLA_PROXY_ADMIN_URL"],
            model=env.get("SLA_PROXY_MODEL", "tiny-llama"),
            max_model_len=int(env.get("SLA_PROXY_MAX_MODEL_LEN", "2048")),
            logs=Path(env.get("SLA_PROXY_E2E_LOGS", "out/e2e-vllm")),
            driver_pid=int(env.get("SLA_PROXY_DRIVER_PID", os.getppid())),
        )


@dataclass(frozen=True)
class RawResponse:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def post_json(base: str, path: str, payload: dict[str, Any]) -> RawResponse:
    """POST and read the whole answer, whatever its status."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(base + path, json=payload) as response,
    ):
        return RawResponse(
            status=response.status,
            content_type=response.headers.get("Content-Type", ""),
            body=await response.read(),
        )


async def sse_events(base: str, path: str, payload: dict[str, Any]) -> list[Any]:
    """Every `data:` event of a streamed answer, JSON-decoded; `[DONE]` kept as a string."""
    events: list[Any] = []
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(base + path, json=payload) as response,
    ):
        assert response.status == 200, await response.text()
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line.removeprefix("data:").strip()
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def typed_events(base: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a streamed `/v1/responses` answer, JSON-decoded; each event's
    `event:` line must name the type its data says."""
    events: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(base + "/v1/responses", json=payload) as response,
    ):
        assert response.status == 200, await response.text()
        body = (await response.read()).decode()
    for block in filter(None, body.split("\n\n")):
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}", block
        events.append(event)
    return events


async def get_text(url: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return response.status, await response.text()


async def vllm_metric(vllm: str, name: str, **labels: str) -> float:
    """Sum of a vLLM metric's samples whose labels include `labels` (0 when absent)."""
    status, text = await get_text(vllm + "/metrics")
    assert status == 200, text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], within: float, interval: float = 0.1
) -> bool:
    """Poll `predicate` until it holds or `within` seconds pass; True if it held."""
    deadline = time.monotonic() + within
    while True:
        if await predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
