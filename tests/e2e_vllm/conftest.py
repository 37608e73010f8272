"""Fixtures of the end-to-end checks; everything is skipped unless run.sh set things up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_vllm_support import ENV_VLLM_URL, SKIP_REASON, Endpoints
from openai import OpenAI


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `make test` collects this folder too; without a vLLM these checks cannot run.
    if os.environ.get(ENV_VLLM_URL):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def endpoints() -> Endpoints:
    return Endpoints.from_env()


def _client(base: str) -> Iterator[OpenAI]:
    # No retries: a retried request would hide the very answer a check looks at.
    client = OpenAI(base_url=base + "/v1", api_key="e2e", max_retries=0, timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def direct(endpoints: Endpoints) -> Iterator[OpenAI]:
    """OpenAI client talking to vLLM itself: the reference answer."""
    yield from _client(endpoints.vllm)


@pytest.fixture(scope="session")
def proxied(endpoints: Endpoints) -> Iterator[OpenAI]:
    """OpenAI client talking to vLLM through the proxy."""
    yield from _client(endpoints.proxy)
