"""The proxy's push client against the real Alertmanager binary: firing then resolved
reach a webhook through the deploy/ routing."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from proxy.server.alertmanager import ALERT_NAME, AlertmanagerClient, AlertPusher
from tests.deploy.services import Webhook

pytestmark = pytest.mark.services


def _ours(status: str) -> Any:
    def match(path: str, alert: dict[str, Any]) -> bool:
        labels = alert["labels"]
        return bool(
            labels.get("alertname") == ALERT_NAME
            and labels.get("instance") == "proxy-under-test:9464"
            and alert["status"] == status
        )

    return match


async def test_pushed_alert_fires_then_resolves_at_the_webhook(
    alertmanager: str, webhook: Webhook
) -> None:
    results: list[str] = []
    async with aiohttp.ClientSession() as session:
        client = AlertmanagerClient(session, alertmanager, timeout=5, on_result=results.append)
        pusher = AlertPusher(
            client,
            labels={"instance": "proxy-under-test:9464"},
            generator_url="http://proxy-under-test:9464/status",
            resend_interval=30,
        )
        pusher.update(True, "Demand exceeds capacity", "arrivals 40 req/s, served 10 req/s")
        await pusher.wait_idle()
        path, firing = await asyncio.to_thread(webhook.wait_for_alert, _ours("firing"), 20)
        assert path == "/pager"  # severity critical routes to the pager receiver
        assert firing["annotations"] == {
            "summary": "Demand exceeds capacity",
            "description": "arrivals 40 req/s, served 10 req/s",
        }
        assert firing["generatorURL"] == "http://proxy-under-test:9464/status"

        pusher.update(False, "Demand exceeds capacity", "back within capacity")
        await pusher.wait_idle()
        _, resolved = await asyncio.to_thread(webhook.wait_for_alert, _ours("resolved"), 20)
        assert resolved["startsAt"] == firing["startsAt"]
    assert results == ["ok", "ok"]
