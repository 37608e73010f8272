"""The Alertmanager configuration: valid, and routes by severity."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.paths import ALERTMANAGER_CONFIG, require_binary


def test_amtool_accepts_the_config() -> None:
    amtool = require_binary("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=SLAProxyCapacityExceeded", "severity=critical"], "pager"),
        (["alertname=SLAProxyHighShedRatio", "severity=warning"], "ticket"),
        (["alertname=Other"], "ticket"),
    ],
)
def test_routes_by_severity(labels: list[str], receiver: str) -> None:
    amtool = require_binary("amtool")
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver
