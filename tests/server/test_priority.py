"""Priority: a mapped API key's class is a ceiling the header may only lower; without a
mapped key the header counts only with --trust-priority-header, else normal."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from proxy.limiter import Priority
from proxy.server.inbound import priority_of, queue_timeout_of
from proxy.settings import Settings
from tests.helpers.settings import make_settings


def settings(**values: Any) -> Settings:
    return make_settings(**values)


def request(**headers: str) -> Any:
    return make_mocked_request("POST", "/v1/chat/completions", headers=headers)


def test_an_untrusted_header_is_ignored() -> None:
    assert priority_of(request(**{"x-priority": "high"}), settings()) is Priority.NORMAL
    assert priority_of(request(**{"x-priority": "low"}), settings()) is Priority.NORMAL


def test_a_trusted_header_names_the_class() -> None:
    trusted = settings(trust_priority_header=True)
    assert priority_of(request(**{"x-priority": "HIGH"}), trusted) is Priority.HIGH
    assert priority_of(request(**{"x-priority": "low"}), trusted) is Priority.LOW


def test_unknown_header_value_is_normal() -> None:
    trusted = settings(trust_priority_header=True)
    assert priority_of(request(**{"x-priority": "urgent!"}), trusted) is Priority.NORMAL


def test_api_key_mapping_applies_without_a_header() -> None:
    state = settings(api_key_priorities={"sk-batch": "low"})
    assert priority_of(request(Authorization="Bearer sk-batch"), state) is Priority.LOW
    assert priority_of(request(Authorization="Bearer other"), state) is Priority.NORMAL


@pytest.mark.parametrize("trust", [False, True])
def test_a_header_cannot_raise_a_keys_class(trust: bool) -> None:
    state = settings(api_key_priorities={"sk-batch": "low"}, trust_priority_header=trust)
    for asked in ("high", "normal", "urgent!"):
        req = request(Authorization="Bearer sk-batch", **{"x-priority": asked})
        assert priority_of(req, state) is Priority.LOW


def test_a_header_may_lower_a_keys_class() -> None:
    state = settings(api_key_priorities={"sk-vip": "high"})
    lowered = request(Authorization="Bearer sk-vip", **{"x-priority": "low"})
    assert priority_of(lowered, state) is Priority.LOW
    assert priority_of(request(Authorization="Bearer sk-vip"), state) is Priority.HIGH


def test_queue_timeout_header_is_capped() -> None:
    state = settings(queue_timeout=5, max_queue_timeout=20)
    assert queue_timeout_of(request(**{"x-queue-timeout": "2.5"}), state) == 2.5
    assert queue_timeout_of(request(**{"x-queue-timeout": "999"}), state) == 20
    assert queue_timeout_of(request(**{"x-queue-timeout": "soon"}), state) is None
    assert queue_timeout_of(request(), state) is None  # the SLA's budget applies
