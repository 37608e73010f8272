"""Fixtures of the deployment tests: a webhook receiver, a real Alertmanager, and the
full simulator -> proxy -> Prometheus -> Alertmanager stack (one per session: it is
the expensive part, and both the alerting and the dashboard tests read from it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.services import Process, Webhook, start_alertmanager
from tests.deploy.stack import Stack, start_stack


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    receiver = Webhook()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[str]:
    process: Process | None = None
    try:
        process, url = start_alertmanager(tmp_path, webhook.url)
        yield url
    finally:
        if process is not None:
            process.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        running.stop()
