"""CPU and memory of processes and of the whole machine, read from /proc."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.bench.sweep import Progress


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_seconds: float  # utime + stime, all threads
    rss_bytes: int  # VmRSS
    hwm_bytes: int  # VmHWM: the peak RSS so far


def read_proc(pid: int) -> ProcSample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses; fields follow the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    memory: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            memory[name] = int(value.split()[0]) * 1024  # reported in kB
    return ProcSample(ticks / os.sysconf("SC_CLK_TCK"), memory["VmRSS"], memory["VmHWM"])


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    role: str
    pid: int
    idle: ProcSample  # started, warmed by one request of each kind, before the load
    after: ProcSample  # after the load
    requests: int  # requests it handled during the load

    @property
    def cpu_seconds(self) -> float:
        return self.after.cpu_seconds - self.idle.cpu_seconds

    @property
    def cpu_per_1k(self) -> float | None:
        return 1000 * self.cpu_seconds / self.requests if self.requests else None


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is in user


class CpuPerLevel:
    """Samples every process's CPU each time a sweep level finishes, so the CPU spent
    between two level ends is charged to the later level (levels run one at a time).

    "others" is what the machine's other tenants used meanwhile, in cores: the
    machine's busy time minus ours over the wall time. It says which levels ran on
    a contended machine."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._last = self._now()
        self.spent: dict[tuple[str, int], dict[str, float]] = {}

    def _now(self) -> dict[str, float]:
        now = {role: read_proc(pid).cpu_seconds for role, pid in self._pids.items()}
        ours = sum({pid: now[role] for role, pid in self._pids.items()}.values())
        return now | {"_ours": ours, "_busy": machine_busy_seconds(), "_wall": time.monotonic()}

    def __call__(self, event: Progress) -> None:
        if event.total is None or event.done != event.total:
            return
        now = self._now()
        delta = {key: now[key] - self._last[key] for key in now}
        spent = {role: delta[role] for role in self._pids}
        if delta["_wall"] > 0:
            spent["others"] = max(0.0, delta["_busy"] - delta["_ours"]) / delta["_wall"]
        self.spent[event.endpoint, int(event.level)] = spent
        self._last = now
