"""The Prometheus rules: valid, unit-tested both ways, documented, on the proxy's metrics."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from proxy.metrics import Metrics
from tests.deploy.paths import DEPLOY, RULE_TESTS, RULES, RUNBOOKS
from tests.helpers.tools import require

# Asked of the lead, not exported yet: the floor rule falls back to 1 without it.
_REQUESTED_METRICS = {"proxy_concurrency_limit_min"}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported_names() -> set[str]:
    """Every series name the proxy can export, labelled children or not."""
    registry = CollectorRegistry()
    Metrics(registry, {"ttft": 0.5, "tpot": 0.05, "e2e": 10})
    return {
        family.name + suffix for family in registry.collect() for suffix in _SUFFIXES[family.type]
    }


def test_promtool_accepts_the_rules() -> None:
    promtool = require("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = require("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = require("promtool")
    config = DEPLOY / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_for_severity_and_annotations() -> None:
    for alert in _alerts():
        name = alert["alert"]
        assert alert.get("for"), f"{name} has no `for`"
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        annotations = alert["annotations"]
        assert annotations["summary"].strip(), name
        assert "{{" in annotations["description"], f"{name}: description carries no value"


def test_every_alert_links_its_own_runbook() -> None:
    names = {alert["alert"] for alert in _alerts()}
    for alert in _alerts():
        url = alert["annotations"]["runbook_url"]
        assert url.endswith(f"deploy/runbooks/{alert['alert']}.md"), url
    assert {path.stem for path in RUNBOOKS.glob("*.md")} == names


def test_every_runbook_says_what_it_means_what_to_check_what_to_do() -> None:
    for path in RUNBOOKS.glob("*.md"):
        text = path.read_text()
        for heading in ("## What it means", "## What to check", "## What to do"):
            assert heading in text, f"{path.name} lacks {heading!r}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for alert in _alerts():
        assert cases.get(alert["alert"]) == {True, False}, alert["alert"]


def test_required_alerts_exist() -> None:
    names = {alert["alert"] for alert in _alerts()}
    assert names >= {
        "SLAProxyCapacityExceeded",
        "SLAProxySLOBurnRateFast",
        "SLAProxySLOBurnRateSlow",
        "SLAProxyLimitAtFloor",
        "SLAProxyHighShedRatio",
        "SLAProxyUpstreamEjected",
        "SLAProxyPoolUnavailable",
        "SLAProxyDown",
        "SLAProxyQueueSaturated",
    }


def test_rules_use_only_metrics_the_proxy_exports() -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    used = {
        name
        for rule in _rules()
        for name in re.findall(r"\bproxy_[a-z0-9_]+", rule["expr"])
        + re.findall(r"\bproxy:[a-z0-9_:]+", rule["expr"])
    }
    unknown = used - exported_names() - recorded - _REQUESTED_METRICS
    assert not unknown, f"rules use metrics nobody exports: {sorted(unknown)}"


def test_prometheus_config_loads_the_rules_directory_compose_mounts() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.rules.yml"]
    assert RULES.name.endswith(".rules.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["sla-proxy"]["static_configs"][0]["targets"] == ["proxy:9464"]
