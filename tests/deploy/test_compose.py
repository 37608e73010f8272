"""Dockerfile and docker compose files (no docker daemon here): they parse, every file
they mount exists, and ports, paths and settings agree with each other and with the
proxy's defaults."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from proxy.cli import COMMANDS, build_parser
from proxy.settings import Settings
from tests.deploy.paths import DEPLOY, GRAFANA, REPO

GPU = DEPLOY / "docker-compose.yml"
CPU = DEPLOY / "docker-compose.cpu.yml"
# The declared defaults, not Settings(): that would read this shell's PROXY_* variables.
DEFAULT_PORT: int = Settings.model_fields["port"].default
DEFAULT_ADMIN_PORT: int = Settings.model_fields["admin_port"].default


def _compose(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _expand(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?message} with VAR unset."""
    return re.sub(
        r"\$\{\w+:([-?])([^}]*)\}", lambda m: m.group(2) if m.group(1) == "-" else "x", value
    )


def _proxy_settings(environment: dict[str, str]) -> Settings:
    values = {}
    for key, raw in environment.items():
        assert key.startswith("PROXY_"), key
        name = key.removeprefix("PROXY_").lower()
        assert name in Settings.model_fields, f"{key} is not a setting"
        values[name] = _expand(str(raw))
    return Settings.model_validate(values)


def _container_port(mapping: str) -> int:
    return int(mapping.split(":")[-1])


def _host_port(url: str) -> str:
    return urlsplit(url).netloc


@pytest.fixture(params=[GPU, CPU], ids=["gpu", "cpu"])
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _compose(request.param)


def test_compose_files_have_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "vllm",
        "proxy",
        "prometheus",
        "alertmanager",
        "alert-webhook",
        "grafana",
    }


def test_every_bind_mount_source_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
        if "build" in service:
            context = DEPLOY / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_proxy_environment_is_valid_settings_on_the_default_ports(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["proxy"]
    settings = _proxy_settings(proxy["environment"])
    assert (settings.port, settings.admin_port) == (DEFAULT_PORT, DEFAULT_ADMIN_PORT)
    published = {_container_port(mapping.split(" ")[0]) for mapping in proxy["ports"]}
    assert published == {settings.port, settings.admin_port}


def test_proxy_upstream_is_the_vllm_service_port(compose: dict[str, Any]) -> None:
    settings = _proxy_settings(compose["services"]["proxy"]["environment"])
    vllm_command = compose["services"]["vllm"]["command"]
    assert _host_port(settings.upstream_base) == "vllm:8000"
    assert "--port=8000" in vllm_command


def test_prometheus_scrapes_the_services_it_names(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets["sla-proxy"] == [f"proxy:{DEFAULT_ADMIN_PORT}"]
    assert targets["vllm"] == ["vllm:8000"]
    (alertmanager,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager == "alertmanager:9093"
    assert "9093:9093" in compose["services"]["alertmanager"]["ports"]
    settings = _proxy_settings(compose["services"]["proxy"]["environment"])
    assert settings.alertmanager_url is not None
    assert _host_port(str(settings.alertmanager_url)) == alertmanager


def test_prometheus_mounts_the_rules_where_its_config_looks(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in volumes
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (pattern,) = config["rule_files"]
    local = DEPLOY / "prometheus" / "rules"
    assert list(local.glob(Path(pattern).name)), pattern


def test_alertmanager_webhooks_reach_the_example_receiver(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    port = compose["services"]["alert-webhook"]["environment"]["HTTP_PORT"]
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert _host_port(hook["url"]) == f"alert-webhook:{port}"


def test_grafana_is_provisioned_from_the_repository(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "../grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / "dashboards" / Path(home).name).is_file()
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["services"]["prometheus"]["ports"]


def test_gpu_compose_runs_vllm_as_in_the_lab() -> None:
    vllm = _compose(GPU)["services"]["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    for flag in (
        "--enforce-eager",
        "--dtype=bfloat16",
        "--max-model-len=8192",
        "--gpu-memory-utilization=0.85",
    ):
        assert flag in vllm["command"]
    assert vllm["ipc"] == "host"
    assert vllm["environment"]["HF_TOKEN"].startswith("${HF_TOKEN")
    assert any(v.endswith(":/root/.cache/huggingface") for v in vllm["volumes"])
    (device,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_cpu_compose_swaps_only_vllm_for_the_simulator() -> None:
    gpu, cpu = _compose(GPU)["services"], _compose(CPU)["services"]
    command = cpu["vllm"]["command"]
    assert command[0] == "sim" and "deploy" not in cpu["vllm"]
    build_parser("sim").parse_args(command)  # every flag is one the simulator knows
    for name in gpu.keys() - {"vllm"}:
        assert cpu[name] == gpu[name], name


def test_dockerfile_runs_the_proxy_as_non_root_with_an_admin_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    assert lines[[line.startswith("FROM") for line in lines].index(True)] == (
        "FROM python:3.11-slim"
    )
    user = next(line.split()[1] for line in lines if line.startswith("USER "))
    assert user not in {"root", "0"}
    uid = re.search(r"useradd .*--uid (\d+)", text)
    assert uid is not None and uid.group(1) == user
    healthcheck = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert "/healthz" in healthcheck and f"'{DEFAULT_ADMIN_PORT}'" in healthcheck
    exposed = {
        int(port) for line in lines if line.startswith("EXPOSE") for port in line.split()[1:]
    }
    assert exposed == {DEFAULT_PORT, DEFAULT_ADMIN_PORT}
    assert "ENV PROXY_HOST=0.0.0.0" in lines


def test_dockerfile_copies_what_exists_and_starts_a_real_command() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in shlex.split(line)[1:-1]:
                # README.md is the lead's (merged from each engineer's notes); pip needs it.
                if source != "README.md":
                    assert (REPO / source).exists(), source
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert 'ENTRYPOINT ["sla-proxy"]' in text and "sla-proxy" in scripts
    assert 'CMD ["serve"]' in text and "serve" in COMMANDS
