"""The Grafana dashboard: valid against @grafana/schema's Dashboard type, portable (a
datasource variable, no hard-coded instance), complete (per pool member too), and every
query runs against a real Prometheus that scraped the proxy in front of a pool of two
simulated engines under load, one of them ejected and re-admitted."""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.paths import GRAFANA, REPO
from tests.deploy.services import prom_api
from tests.deploy.stack import Stack, member_out_episode, overload_episode
from tests.deploy.test_prometheus_rules import exported_names
from tests.helpers.tools import require

DASHBOARD = GRAFANA / "dashboards" / "sla-proxy.json"
SCHEMA_PACKAGE = Path(__file__).parent / "grafana-schema"
CACHE = REPO / ".cache" / "grafana-schema"  # gitignored; npm installs here
# Grafana's variables, as the test stands them in for a query to Prometheus directly.
SUBSTITUTIONS = {
    "$__rate_interval": "10s",
    "$instance": ".+",
    "$model": ".+",
    "$upstream": ".+",
}
# The pool contract's per-member families (label `upstream`): every pool panel reads one.
POOL_FAMILIES = {
    "Limit per upstream": "proxy_upstream_concurrency_limit",
    "In-flight per upstream": "proxy_upstream_inflight_requests",
    "P90 TTFT per upstream": "proxy_upstream_latency_seconds",
    "P90 TPOT per upstream": "proxy_upstream_latency_seconds",
    "P90 E2E per upstream": "proxy_upstream_latency_seconds",
    "Upstreams up and ejections": "proxy_upstream_ejections_total",
    "Requests/s per upstream": "proxy_upstream_requests_total",
}

Validator = Callable[[Path], subprocess.CompletedProcess[str]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _exprs() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _install() -> None:
    """`npm ci` into the cache unless it already holds this exact lockfile."""
    CACHE.mkdir(parents=True, exist_ok=True)
    lock = (SCHEMA_PACKAGE / "package-lock.json").read_text()
    with (CACHE / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # parallel test runs share the cache
        installed = CACHE / "package-lock.json"
        if (
            (CACHE / "node_modules").is_dir()
            and installed.exists()
            and installed.read_text() == lock
        ):
            return
        for name in ("package.json", "package-lock.json"):
            shutil.copy(SCHEMA_PACKAGE / name, CACHE / name)
        (CACHE / "dashboard.schema.json").unlink(missing_ok=True)
        result = subprocess.run(
            [require("npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def validator() -> Iterator[Validator]:
    node = require("node", "nodejs")
    require("npm")
    _install()
    shutil.copy(SCHEMA_PACKAGE / "validate.mjs", CACHE / "validate.mjs")

    def validate(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [node, str(CACHE / "validate.mjs"), str(CACHE / "dashboard.schema.json"), str(path)],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=300,
        )

    yield validate


def test_dashboard_validates_against_grafana_schema(validator: Validator) -> None:
    result = validator(DASHBOARD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_dashboard(validator: Validator, tmp_path: Path) -> None:
    broken = _dashboard()
    del broken["panels"][1]["type"]
    broken["schemaVersion"] = "39"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = validator(path)
    assert result.returncode == 1
    assert "must have required property 'type'" in result.stdout
    assert "/schemaVersion must be number" in result.stdout


def test_dashboard_picks_its_datasource_from_a_variable() -> None:
    variables = {var["name"]: var for var in _dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_selector_filters_by_a_variable_not_a_hard_coded_target() -> None:
    for expr in _exprs():
        for match in re.finditer(r"\b(proxy_[a-z0-9_]+|vllm:[a-z0-9_]+)(\{[^}]*\})?", expr):
            name, selector = match.group(1), match.group(2) or ""
            wanted = (
                'instance=~"$instance"' if name.startswith("proxy_") else 'model_name=~"$model"'
            )
            assert wanted in selector, f"{name} in {expr}"
        assert not re.search(r'(instance|model_name|job)="', expr), expr


def test_dashboard_has_the_operator_panels() -> None:
    titles = {panel["title"] for panel in _panels()}
    assert titles >= {
        "Limit vs in-flight vs queue",
        "Requests/s",
        "Tokens/s",
        "Goodput and SLA attainment",
        "Shed by reason",
        "Queue wait",
        "Capacity alert",
        "vLLM running and waiting",
        "vLLM KV cache usage",
        "vLLM preemptions",
    }
    by_title = {panel["title"]: panel for panel in _panels()}
    for signal, title in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "E2E")):
        panel = next(p for name, p in by_title.items() if name.startswith(title))
        exprs = " ".join(target["expr"] for target in panel["targets"])
        for quantile in ("0.5", "0.9", "0.99"):
            assert f"histogram_quantile({quantile}, " in exprs
        assert f"proxy_{signal}_seconds_bucket" in exprs
        assert f'proxy_sla_target_seconds{{instance=~"$instance", signal="{signal}"}}' in exprs


def test_pool_panels_show_each_member_by_its_upstream_label() -> None:
    by_title = {panel["title"]: panel for panel in _panels()}
    rows = [panel["title"] for panel in _dashboard()["panels"] if panel["type"] == "row"]
    assert "Pool members" in rows
    for title, family in POOL_FAMILIES.items():
        exprs = [target["expr"] for target in by_title[title]["targets"]]
        member = [expr for expr in exprs if "proxy_upstream_" in expr]
        assert any(family in expr for expr in member), (title, family)
        for expr in member:  # one line per member, filtered by the upstream variable
            assert "by (upstream" in expr, expr
            assert 'upstream=~"$upstream"' in expr, expr
    for signal, title in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "E2E")):
        exprs = " ".join(t["expr"] for t in by_title[f"P90 {title} per upstream"]["targets"])
        assert f'signal="{signal}", quantile="0.9"' in exprs
        assert f'proxy_sla_target_seconds{{instance=~"$instance", signal="{signal}"}}' in exprs
    up = " ".join(t["expr"] for t in by_title["Upstreams up and ejections"]["targets"])
    assert "max by (upstream) (proxy_upstream_up{" in up
    # the pool-level stat counts members in rotation: one member out is not "down"
    stat = " ".join(t["expr"] for t in by_title["Upstreams up"]["targets"])
    assert "sum(proxy_upstream_up{" in stat and "proxy_pool_members{" in stat


def test_the_upstream_variable_lists_the_members_of_the_chosen_proxies() -> None:
    variables = {var["name"]: var for var in _dashboard()["templating"]["list"]}
    upstream = variables["upstream"]
    assert upstream["query"]["query"] == (
        'label_values(proxy_upstream_concurrency_limit{instance=~"$instance"}, upstream)'
    )
    assert upstream["includeAll"] and upstream["allValue"] == ".+"


def test_dashboard_uses_only_metrics_the_proxy_exports() -> None:
    used = {name for expr in _exprs() for name in re.findall(r"\bproxy_[a-z0-9_]+", expr)}
    assert used <= exported_names(), used - exported_names()


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in _dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_provisioning_loads_the_dashboards_directory_and_prometheus() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/sla-proxy.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (prometheus,) = sources["datasources"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.timeout(240)
def test_every_panel_query_returns_data_from_real_prometheus(stack: Stack) -> None:
    overload_episode(stack)  # the proxy and the pool of two engines under load, scraped each second
    member_out_episode(stack)  # one member ejected and re-admitted: the ejection series exist
    failures = []
    for expr in _exprs():
        query = expr
        for variable, value in SUBSTITUTIONS.items():
            query = query.replace(variable, value)
        data = prom_api(
            stack.prometheus,
            "query_range",
            query=query,
            start=f"{stack.started_at:.3f}",
            end=f"{time.time():.3f}",
            step="2",
        )
        values = [float(v) for series in data["result"] for _, v in series["values"]]
        if not any(value == value for value in values):  # NaN != NaN: no real number
            failures.append(expr)
    assert not failures, "queries without data:\n" + "\n".join(failures)


def test_substitutions_cover_every_variable_the_queries_use() -> None:
    used = {match for expr in _exprs() for match in re.findall(r"\$\w+", expr)}
    assert used <= set(SUBSTITUTIONS), used - set(SUBSTITUTIONS)
