"""End to end: the proxy in front of the simulator is overloaded by a bounded load; real
Prometheus evaluates the real rules and real Alertmanager routes the capacity alert to a
webhook; the load stops and the resolution arrives. The proxy's own push (with
--alertmanager-url) travels the same Alertmanager."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.server.alertmanager import ALERT_NAME
from tests.deploy.services import http_get
from tests.deploy.stack import Stack, overload_episode

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.timeout(240)]


def _from_prometheus(alert: dict[str, Any]) -> bool:
    # Prometheus adds the scrape job; the proxy's own push carries no job label.
    return bool(alert["labels"].get("job") == "sla-proxy")


def test_capacity_alert_fires_from_prometheus_and_pages(stack: Stack) -> None:
    episode = overload_episode(stack)
    path, alert = episode.prometheus_firing
    assert path == "/pager"
    assert alert["labels"]["alertname"] == ALERT_NAME
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"].endswith(f"deploy/runbooks/{ALERT_NAME}.md")
    # the description's numbers were filled in from the recording rules, not "n/a"
    assert "n/a" not in alert["annotations"]["description"], alert["annotations"]
    assert episode.load_statuses[429] > 0 and episode.load_statuses[200] > 0


def test_capacity_alert_resolves_after_the_load_stops(stack: Stack) -> None:
    episode = overload_episode(stack)
    _, resolved = stack.webhook.wait_for_alert(
        lambda path, alert: (
            _from_prometheus(alert)
            and alert["labels"]["alertname"] == ALERT_NAME
            and alert["status"] == "resolved"
        ),
        timeout=60,
    )
    assert resolved["startsAt"] == episode.prometheus_firing[1]["startsAt"]


def test_proxy_push_reaches_the_webhook_firing_then_resolved(stack: Stack) -> None:
    overload_episode(stack)
    status, metrics = http_get(f"{stack.proxy_admin}/metrics")
    assert status == 200
    if b"proxy_alertmanager_pushes_total{" not in metrics:
        pytest.skip("sla-proxy serve does not push to --alertmanager-url yet (no pushes counted)")

    def pushed(state: str) -> Any:
        return lambda path, alert: (
            not _from_prometheus(alert)
            and alert["labels"]["alertname"] == ALERT_NAME
            and alert["status"] == state
        )

    path, firing = stack.webhook.wait_for_alert(pushed("firing"), timeout=30)
    assert path == "/pager"
    assert firing["annotations"]["summary"] and firing["annotations"]["description"]
    _, resolved = stack.webhook.wait_for_alert(pushed("resolved"), timeout=60)
    assert resolved["startsAt"] == firing["startsAt"]
    assert b'proxy_alertmanager_pushes_total{result="ok"}' in metrics
