"""The README stays current: every setting is in its configuration table, and the
commands it promises exist in the Makefile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    option, env = "--" + name.replace("_", "-"), "PROXY_" + name.upper()
    assert f"| `{option}` | `{env}` |" in README


@pytest.mark.parametrize("target", ["run", "test", "lint", "bench", "scenarios", "e2e-vllm"])
def test_promised_make_targets_exist(target: str) -> None:
    assert f"make {target}" in README
    assert re.search(rf"^{re.escape(target)}:", (ROOT / "Makefile").read_text(), re.M)


def test_no_placeholder_left() -> None:
    assert not re.search(r"^[A-Z_]+_SECTION$", README, re.M)
