"""The Alertmanager configuration: valid, and routes by severity."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from tests.deploy.paths import ALERTMANAGER_CONFIG
from tests.deploy.services import http_get, poll
from tests.helpers.tools import require


def test_amtool_accepts_the_config() -> None:
    amtool = require("amtool")
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
        (["alertname=SLAProxyUpstreamEjected", "severity=warning", "upstream=b"], "ticket"),
        (["alertname=SLAProxyPoolUnavailable", "severity=critical"], "pager"),
        (["alertname=Other"], "ticket"),
    ],
)
def test_routes_by_severity(labels: list[str], receiver: str) -> None:
    amtool = require("amtool")
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


@pytest.mark.services
def test_capacity_alert_inhibits_the_shed_warning_of_its_instance(alertmanager: str) -> None:
    def alert(name: str, severity: str, instance: str) -> dict[str, object]:
        labels = {"alertname": name, "severity": severity, "instance": instance}
        return {"labels": labels, "annotations": {"summary": name}}

    body = [
        alert("SLAProxyCapacityExceeded", "critical", "a:9464"),
        alert("SLAProxyHighShedRatio", "warning", "a:9464"),
        alert("SLAProxyHighShedRatio", "warning", "b:9464"),
    ]
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    def states() -> dict[tuple[str, str], str] | None:
        _, raw = http_get(f"{alertmanager}/api/v2/alerts")
        found = {
            (a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["state"]
            for a in json.loads(raw or b"[]")
        }
        return found if "suppressed" in found.values() and len(found) == 3 else None

    assert poll(states, 20, "an inhibited alert") == {
        ("SLAProxyCapacityExceeded", "a:9464"): "active",
        ("SLAProxyHighShedRatio", "a:9464"): "suppressed",
        ("SLAProxyHighShedRatio", "b:9464"): "active",
    }


@pytest.mark.services
def test_pool_unavailable_inhibits_the_member_alerts_of_its_instance(alertmanager: str) -> None:
    def alert(name: str, severity: str, instance: str, upstream: str = "") -> dict[str, object]:
        labels = {"alertname": name, "severity": severity, "instance": instance}
        if upstream:
            labels["upstream"] = upstream
        return {"labels": labels, "annotations": {"summary": name}}

    body = [
        alert("SLAProxyPoolUnavailable", "critical", "a:9464"),
        alert("SLAProxyUpstreamEjected", "warning", "a:9464", "h100"),
        alert("SLAProxyUpstreamEjected", "warning", "b:9464", "spark"),
    ]
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    def states() -> dict[tuple[str, str], str] | None:
        _, raw = http_get(f"{alertmanager}/api/v2/alerts")
        found = {
            (a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["state"]
            for a in json.loads(raw or b"[]")
        }
        return found if "suppressed" in found.values() and len(found) == 3 else None

    assert poll(states, 20, "an inhibited alert") == {
        ("SLAProxyPoolUnavailable", "a:9464"): "active",
        ("SLAProxyUpstreamEjected", "a:9464"): "suppressed",
        ("SLAProxyUpstreamEjected", "b:9464"): "active",
    }
