"""One whole run's figures and the machine they were taken on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.bench.suite.config import SuiteConfig
from proxy.bench.suite.load import LoadResult
from proxy.bench.suite.timing import MicroResult


@dataclass(frozen=True, slots=True)
class SuiteResult:
    config: SuiteConfig
    machine: dict[str, Any]
    load: LoadResult
    micro: list[MicroResult]
    duration: float
    command: str = "make bench"
    notes: list[str] = field(default_factory=list)


def machine_info() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
