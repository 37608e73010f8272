"""Priority from the x-priority header, else from the API key mapping, else normal."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import make_mocked_request

from proxy.limiter import Priority
from proxy.server.inbound import priority_of, queue_timeout_of
from proxy.settings import Settings
from tests.helpers.settings import make_settings


def settings(**values: Any) -> Settings:
    return make_settings(**values)


def request(**headers: str) -> Any:
    return make_mocked_request("POST", "/v1/chat/completions", headers=headers)


def test_header_names_the_class() -> None:
    assert priority_of(request(**{"x-priority": "HIGH"}), settings()) is Priority.HIGH


def test_unknown_header_value_is_normal() -> None:
    assert priority_of(request(**{"x-priority": "urgent!"}), settings()) is Priority.NORMAL


def test_api_key_mapping_applies_without_a_header() -> None:
    state = settings(api_key_priorities={"sk-batch": "low"})
    assert priority_of(request(Authorization="Bearer sk-batch"), state) is Priority.LOW
    assert priority_of(request(Authorization="Bearer other"), state) is Priority.NORMAL


def test_header_wins_over_api_key() -> None:
    state = settings(api_key_priorities={"sk-batch": "low"})
    req = request(Authorization="Bearer sk-batch", **{"x-priority": "high"})
    assert priority_of(req, state) is Priority.HIGH


def test_queue_timeout_header_is_capped() -> None:
    state = settings(queue_timeout=5, max_queue_timeout=20)
    assert queue_timeout_of(request(**{"x-queue-timeout": "2.5"}), state) == 2.5
    assert queue_timeout_of(request(**{"x-queue-timeout": "999"}), state) == 20
    assert queue_timeout_of(request(**{"x-queue-timeout": "soon"}), state) is None
    assert queue_timeout_of(request(), state) is None  # the SLA's budget applies
