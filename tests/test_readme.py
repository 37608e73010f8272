"""The README and docs/ stay current: the configuration table is what `Settings` says,
the layer table names every module, the promised make targets exist, and every
relative link or image points at something in the repository.

`python -m tests.test_readme` prints the configuration table to paste into README.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README_PATH = ROOT / "README.md"
README = README_PATH.read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README_PATH, *DOCS]

# [text](target) and ![alt](target); the target ends at whitespace or the closing paren.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def config_table() -> str:
    """The README's configuration table, one row per `Settings` field, in field order."""
    rows = ["| option | environment | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "none" if default is None else str(default)
        option, env = "--" + name.replace("_", "-"), "PROXY_" + name.upper()
        rows.append(f"| `{option}` | `{env}` | `{shown}` | {field.description} |")
    return "\n".join(rows) + "\n"


def links(page: Path) -> list[str]:
    """Link and image targets outside code blocks (a fenced block shows code, not links)."""
    return LINK.findall(FENCE.sub("", page.read_text()))


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def layer_table() -> str:
    match = re.search(r"^\| level \|.*?(?=^$)", README, re.M | re.S)
    assert match, "README.md has no layer table (a table whose first column is `level`)"
    return match.group(0)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    option, env = "--" + name.replace("_", "-"), "PROXY_" + name.upper()
    assert f"| `{option}` | `{env}` |" in README


def test_configuration_table_is_generated_from_settings() -> None:
    assert config_table() in README, "regenerate it: .venv/bin/python -m tests.test_readme"


@pytest.mark.parametrize(
    "module",
    sorted(
        p.relative_to(ROOT / "proxy").as_posix()
        for p in (ROOT / "proxy").rglob("*.py")
        if p.name != "__init__.py"
    ),
)
def test_layer_table_names_every_module(module: str) -> None:
    """Named by its path under proxy/, or by a folder entry (`sim/`) that holds it."""
    named = re.findall(r"`([^`]+)`", layer_table())
    assert module in named or any(n.endswith("/") and module.startswith(n) for n in named)


@pytest.mark.parametrize("target", ["run", "test", "lint", "bench", "scenarios", "e2e-vllm"])
def test_promised_make_targets_exist(target: str) -> None:
    assert f"make {target}" in README
    assert re.search(rf"^{re.escape(target)}:", (ROOT / "Makefile").read_text(), re.M)


def test_no_placeholder_left() -> None:
    assert not re.search(r"^[A-Z_]+_SECTION$", README, re.M)


def docs_linked_from_readme() -> set[str]:
    return {t.partition("#")[0] for t in links(README_PATH) if t.startswith("docs/")}


def test_every_docs_page_the_readme_links_exists() -> None:
    assert docs_linked_from_readme(), "README.md links no page under docs/"
    assert not [p for p in docs_linked_from_readme() if not (ROOT / p).is_file()]


def test_readme_links_every_docs_page() -> None:
    assert {p.relative_to(ROOT).as_posix() for p in DOCS} <= docs_linked_from_readme()


def resolves(page: Path, target: str) -> bool:
    """A path inside the repository that exists; into a Markdown page, a heading's anchor."""
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    if not dest.exists() or not dest.is_relative_to(ROOT):
        return False
    return not anchor or dest.suffix != ".md" or anchor in anchors(dest)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = [t for t in links(page) if is_relative(t) and not resolves(page, t)]
    assert not broken, f"{page.name}: {broken}"


if __name__ == "__main__":
    print(config_table(), end="")


def test_the_hardening_page_lists_every_row_of_the_hostile_matrix() -> None:
    from tests.hostile.test_matrix import ROWS

    page = (ROOT / "docs" / "hardening.md").read_text()
    missing = [r.case for r in ROWS if f"| {r.case} | {r.status} |" not in page]
    assert not missing, f"docs/hardening.md lacks rows: {missing}"
