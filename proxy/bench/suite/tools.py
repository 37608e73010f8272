"""The reference tools from Debian (nginx as the static upstream and the reference
proxy, wrk as the load generator): found on PATH, installed with apt-get when this
process is root and they are missing, or a clear error naming the command to run."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

from proxy.bench.suite.processes import ServiceError

PACKAGES = ("nginx", "wrk")  # Debian package name == binary name for both
INSTALL = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive "
    "apt-get install -y --no-install-recommends " + " ".join(PACKAGES)
)

Which = Callable[[str], str | None]
Runner = Callable[[Sequence[str]], int]


def _which(name: str) -> str | None:
    # nginx lives in /usr/sbin, which a non-root PATH often lacks.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _run(argv: Sequence[str]) -> int:
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(list(argv), env=env, check=False).returncode


def missing(names: Sequence[str] = PACKAGES, which: Which | None = None) -> list[str]:
    found = which or _which
    return [name for name in names if found(name) is None]


def ensure(
    names: Sequence[str] = PACKAGES,
    which: Which | None = None,
    euid: int | None = None,
    run: Runner | None = None,
) -> dict[str, str]:
    """Name -> absolute path of each tool; installs the missing ones when root."""
    which, run = which or _which, run or _run
    absent = missing(names, which)
    if absent:
        if (os.geteuid() if euid is None else euid) != 0:
            raise ServiceError(
                f"{' and '.join(absent)} not installed; as root run: {INSTALL} "
                "(or skip these sections with --sections)"
            )
        install = ["apt-get", "install", "-y", "--no-install-recommends", *absent]
        if run(["apt-get", "update"]) != 0 or run(install) != 0:
            raise ServiceError(f"installing {' '.join(absent)} failed; try: {INSTALL}")
    found = {name: which(name) for name in names}
    still = [name for name, path in found.items() if path is None]
    if still:
        raise ServiceError(f"{' and '.join(still)} still missing after installing; try: {INSTALL}")
    return {name: path for name, path in found.items() if path is not None}


def cpus_for_pinning() -> tuple[int | None, int | None]:
    """(servers' CPU, load generator's CPU): the first two this process may use, or
    no pinning when there are fewer than two or taskset is missing."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or shutil.which("taskset") is None:
        return None, None
    return allowed[0], allowed[1]
