"""Writes prometheusrule.yaml (a Prometheus Operator PrometheusRule) from the one rules
file, deploy/prometheus/rules/sla-proxy.rules.yml: kustomize cannot wrap a plain file
into a CRD's spec, so the wrapper is generated and a test keeps it in step.

    python deploy/k8s/gen_prometheusrule.py           # rewrite
    python deploy/k8s/gen_prometheusrule.py --check   # exit 1 if out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "rules" / "sla-proxy.rules.yml"
OUTPUT = HERE / "prometheusrule.yaml"
HEADER = (
    "# GENERATED from deploy/prometheus/rules/sla-proxy.rules.yml by gen_prometheusrule.py;\n"
    "# edit the rules file and re-run the script, not this file.\n"
)


def render(rules_text: str) -> str:
    groups: list[dict[str, Any]] = yaml.safe_load(rules_text)["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "sla-proxy", "labels": {"app.kubernetes.io/name": "sla-proxy"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(resource, sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    wanted = render(RULES.read_text())
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != wanted:
            print(f"{OUTPUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
