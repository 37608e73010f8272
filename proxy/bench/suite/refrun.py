"""The reference sections in order, on pinned CPUs: this process (the paced client,
the slow sockets) and wrk on the load CPU, every server on the other one."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.bench.suite.clients import SlowResult, measure_slow
from proxy.bench.suite.queued import QueuedResult, measure_queued
from proxy.bench.suite.refconfig import RefConfig
from proxy.bench.suite.reference import RefRow, RefRun, measure_reference, rows
from proxy.bench.suite.streams import PacedRow, PacedRun, measure_paced, paced_rows
from proxy.bench.suite.tools import cpus_for_pinning, ensure


@dataclass(slots=True)
class RefResult:
    config: RefConfig
    machine: dict[str, Any]
    cpus: tuple[int | None, int | None]  # servers', load generator's
    versions: dict[str, str] = field(default_factory=dict)
    runs: list[RefRun] = field(default_factory=list)
    paced: list[PacedRun] = field(default_factory=list)
    slow: SlowResult | None = None
    queued: QueuedResult | None = None
    duration: float = 0.0
    command: str = "make bench"

    @property
    def rows(self) -> list[RefRow]:
        return rows(self.runs)

    @property
    def paced_rows(self) -> list[PacedRow]:
        return paced_rows(self.paced)


@contextlib.contextmanager
def _pinned_self(cpu: int | None) -> Iterator[None]:
    if cpu is None:
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def _versions(binaries: dict[str, str]) -> dict[str, str]:
    import subprocess

    found = {}
    for name, argv in (("nginx", ["-v"]), ("wrk", ["-v"])):
        if name in binaries:
            done = subprocess.run(
                [binaries[name], *argv], capture_output=True, text=True, check=False
            )
            first = (done.stdout + done.stderr).strip().splitlines()[0]
            found[name] = first.split(" Copyright")[0].replace("nginx version: ", "")
    return found


async def run_reference_sections(
    config: RefConfig,
    machine: dict[str, Any],
    binaries: dict[str, str] | None = None,
    command: str = "make bench",
) -> RefResult:
    """`binaries`: nginx and wrk by name (found or installed when None and needed)."""
    started = time.perf_counter()
    if binaries is None:
        binaries = ensure() if config.needs_tools else {}
    cpus = cpus_for_pinning()
    result = RefResult(config, machine, cpus, _versions(binaries), command=command)
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as folder, _pinned_self(cpus[1]):
        # nginx's worker runs unprivileged when started as root: it must get in here.
        os.chmod(folder, 0o755)
        if config.wants("reference"):
            result.runs = await measure_reference(config, binaries, Path(folder), cpus)
        if config.wants("paced"):
            result.paced = await measure_paced(config, folder, cpus)
        if config.wants("clients"):
            result.slow = await measure_slow(config, binaries, Path(folder), cpus)
            result.queued = await measure_queued(config, folder, cpus)
    result.duration = time.perf_counter() - started
    return result
