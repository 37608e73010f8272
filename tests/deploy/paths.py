"""Where the deployment files live. The binaries the tests run (promtool,
prometheus, amtool, Alertmanager, node, npm) come from tests.helpers.tools."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "sla-proxy.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "sla-proxy.test.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
RUNBOOKS = DEPLOY / "runbooks"
GRAFANA = REPO / "grafana"
