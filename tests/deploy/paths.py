"""Where the deployment files live, and the external binaries the tests need.

Binaries (promtool, prometheus, amtool, Alertmanager, npm) are skipped with a reason
when missing, except under CI=true, where a missing binary is a failure: CI installs
them, so their absence there is a broken pipeline, not an optional extra.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "sla-proxy.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "sla-proxy.test.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
RUNBOOKS = DEPLOY / "runbooks"
GRAFANA = REPO / "grafana"


def require_binary(name: str, *candidates: str) -> str:
    """Path of the first binary found, else skip (or fail under CI=true)."""
    for candidate in (name, *candidates):
        path = shutil.which(candidate)
        if path:
            return path
    message = f"{name} not installed (Debian: apt-get install prometheus prometheus-alertmanager)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)
