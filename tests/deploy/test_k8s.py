"""Kubernetes manifests (kustomize; no cluster here): they parse, reference each other
consistently, agree with the proxy's settings, and the PrometheusRule carries exactly
the rules file Prometheus and compose use."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.parse
from typing import Any

import yaml

from proxy.settings import Settings
from tests.deploy.paths import DEPLOY, RULES

K8S = DEPLOY / "k8s"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return loaded


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _load("deployment.yaml")["spec"]["template"]["spec"][
        "containers"
    ]
    return containers[0]


def _env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (K8S / "proxy.env").read_text().splitlines() if line)
    return dict(pairs)


def _settings() -> Settings:
    values = {key.removeprefix("PROXY_").lower(): value for key, value in _env().items()}
    return Settings.model_validate(values)


def _upstream_entries() -> list[tuple[str, urllib.parse.SplitResult]]:
    """PROXY_UPSTREAM as the contract reads it: comma-separated `name=url` or bare URLs."""
    entries = []
    for entry in _env()["PROXY_UPSTREAM"].split(","):
        name, sep, url = entry.partition("=")
        if not sep or "://" in name:
            name, url = "", entry
        entries.append((name, urllib.parse.urlsplit(url)))
    return entries


def test_kustomization_references_existing_files() -> None:
    kustomization = _load("kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    for generator in kustomization["configMapGenerator"]:
        for env_file in generator["envs"]:
            assert (K8S / env_file).is_file(), env_file


def test_configmap_holds_valid_proxy_settings_only() -> None:
    for key in _env():
        assert key.removeprefix("PROXY_").lower() in Settings.model_fields, key
    settings = _settings()
    assert settings.host == "0.0.0.0"  # reachable by probes, the Service and Prometheus


def test_deployment_takes_its_environment_from_the_generated_configmap() -> None:
    (generator,) = _load("kustomization.yaml")["configMapGenerator"]
    (source,) = _container()["envFrom"]
    assert source["configMapRef"]["name"] == generator["name"]


def test_container_ports_are_the_settings_ports() -> None:
    ports = {port["name"]: port["containerPort"] for port in _container()["ports"]}
    settings = _settings()
    assert ports == {"http": settings.port, "admin": settings.admin_port}


def test_probes_use_the_admin_port_health_endpoints() -> None:
    container = _container()
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    admin_routes = (DEPLOY.parent / "proxy" / "server" / "admin.py").read_text()
    for path in ("/healthz", "/readyz"):
        assert f'"{path}"' in admin_routes


def test_pod_runs_as_the_image_user() -> None:
    pod = _load("deployment.yaml")["spec"]["template"]["spec"]
    uid = re.search(r"--uid (\d+)", (DEPLOY / "Dockerfile").read_text())
    assert uid is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1))


def test_service_and_monitor_select_the_pods_and_the_admin_port() -> None:
    deployment, service, monitor = (
        _load("deployment.yaml"),
        _load("service.yaml"),
        _load("servicemonitor.yaml"),
    )
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {port["name"] for port in _container()["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= container_ports
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # the ServiceMonitor's job label is the Service's name, which SLAProxyDown matches
    assert service["metadata"]["name"] == "sla-proxy"
    assert 'up{job="sla-proxy"}' in RULES.read_text()


def test_prometheusrule_groups_equal_the_rules_file() -> None:
    rule = _load("prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_prometheusrule_generator_reports_it_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(K8S / "gen_prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_vllm_is_a_headless_service_of_ready_pods() -> None:
    service = _load("vllm-service.yaml")
    assert "vllm-service.yaml" in _load("kustomization.yaml")["resources"]
    assert service["kind"] == "Service" and service["apiVersion"] == "v1"
    spec = service["spec"]
    assert spec["clusterIP"] == "None"  # DNS answers one A record per pod: the pool
    assert spec.get("publishNotReadyAddresses", False) is False  # loading replicas stay out
    assert spec["selector"], "a headless Service without a selector resolves to nothing"
    # the proxy's own Service must not select vLLM pods, nor the other way round
    proxy_pods = _load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert not spec["selector"].items() <= proxy_pods.items()
    assert not _load("service.yaml")["spec"]["selector"].items() <= spec["selector"].items()
    # clients of a headless Service dial the pod directly: no port remapping
    for port in spec["ports"]:
        assert port["targetPort"] == port["port"], port


def test_the_proxy_upstream_is_the_headless_service_re_resolved() -> None:
    service = _load("vllm-service.yaml")
    (entry,) = _upstream_entries()  # one hostname, many members: DNS makes the pool
    name, url = entry
    assert url.scheme == "http" and url.hostname == service["metadata"]["name"]
    assert url.port in {port["port"] for port in service["spec"]["ports"]}
    assert name, "a named entry gives members stable, readable names: vllm@<ip>:<port>"
    assert float(_env()["PROXY_RESOLVE_INTERVAL"]) > 0
    assert _settings().resolve_interval == float(_env()["PROXY_RESOLVE_INTERVAL"])


def test_one_proxy_fronts_the_pool() -> None:
    # two proxies sharing the replicas would each take their whole capacity for its own
    assert _load("deployment.yaml")["spec"]["replicas"] == 1
