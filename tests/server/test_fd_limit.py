"""The open-files limit is raised as far as --max-connections needs, and when the hard
limit is too low the cap is lowered to what it allows (never EMFILE at accept)."""

from __future__ import annotations

import resource

import pytest

from proxy.server import connections


class Limits:
    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def set(self, which: int, limits: tuple[int, int]) -> None:
        soft, _ = limits
        if soft > self.hard:
            raise ValueError("not allowed to raise the soft limit above the hard one")
        self.soft = soft


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Limits:
    fake = Limits(1024, 1024)
    monkeypatch.setattr(connections.resource, "getrlimit", fake.get)
    monkeypatch.setattr(connections.resource, "setrlimit", fake.set)
    return fake


def test_the_soft_limit_is_raised_to_what_the_cap_needs(limits: Limits) -> None:
    limits.hard = 1_000_000
    assert connections.raise_fd_limit(8192) == 8192
    assert limits.soft == 2 * 8192 + 256


def test_a_low_hard_limit_lowers_the_cap(limits: Limits) -> None:
    limits.hard = 4096
    assert connections.raise_fd_limit(8192) == (4096 - 256) // 2
    assert limits.soft == 4096


def test_a_sufficient_limit_is_left_alone(limits: Limits) -> None:
    limits.soft = limits.hard = 100_000
    assert connections.raise_fd_limit(100) == 100
    assert limits.soft == 100_000
