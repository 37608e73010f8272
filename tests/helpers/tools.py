"""The real programs the suite runs (Prometheus, Alertmanager, Node.js, Chromium,
nginx, wrk): found on PATH, or the test fails naming the command that installs
them. Never a skip: a tool that is missing is a gap in the run, and `make test`
installs them all (deploy/bootstrap.sh) before the first test."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "deploy" / "test-tools.txt"
# nginx lives in /usr/sbin, which a non-root PATH often lacks.
_EXTRA_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"


@cache
def packages() -> dict[str, str]:
    """Binary -> Debian package, from the table the bootstrap script reads too."""
    table: dict[str, str] = {}
    for line in TABLE.read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            table[fields[0]] = fields[1]
    return table


def install_command(*binaries: str) -> str:
    wanted = dict.fromkeys(packages()[b] for b in binaries)
    return (
        "apt-get update && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y --no-install-recommends " + " ".join(wanted)
    )


def find(binary: str) -> str | None:
    return shutil.which(binary) or shutil.which(binary, path=_EXTRA_PATH)


def require(binary: str, *alternatives: str) -> str:
    """Absolute path of `binary` (or the first alternative found); else fail the
    test with the command to run. `binary` must be listed in deploy/test-tools.txt."""
    if binary not in packages():
        raise KeyError(f"{binary} is not in {TABLE.relative_to(REPO)}; add it there")
    for candidate in (binary, *alternatives):
        path = find(candidate)
        if path:
            return path
    pytest.fail(
        f"{binary} is not installed. `make test` installs it when run as root; "
        f"or as root run: {install_command(binary)}",
        pytrace=False,
    )
