"""How much CPU other programs took while a check ran (Linux /proc).

A latency SLA check on a shared 2-core machine means nothing while someone else's
build or test suite takes a core: vLLM's speed then changes under the controller.
The check therefore measures the CPU used by everything outside its own process
tree (the driver, vLLM, the proxies, pytest) and calls a miss inconclusive when
that was substantial, instead of blaming the proxy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> int:
    """All CPUs' non-idle time since boot (the aggregate `cpu` line of /proc/stat)."""
    fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime ticks) of a live process, None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[1]), int(rest[11]) + int(rest[12])


def _tree_ticks(root: int) -> dict[int, int]:
    """CPU ticks of `root` and all its live descendants."""
    stats = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    ours: dict[int, int] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        if pid in stats and pid not in ours:
            ours[pid] = stats[pid][1]
            frontier.extend(child for child, (parent, _) in stats.items() if parent == pid)
    return ours


@dataclass
class ForeignCpu:
    """Mean number of cores used outside the `root` process tree between start and stop."""

    root: int
    _started: float = 0.0
    _busy: int = 0
    _ours: dict[int, int] | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._busy = _busy_ticks()
        self._ours = _tree_ticks(self.root)

    def stop(self) -> float:
        assert self._ours is not None, "start() first"
        elapsed = time.monotonic() - self._started
        busy = _busy_ticks() - self._busy
        now = _tree_ticks(self.root)
        # Processes of ours that ended in between are not counted as ours: conservative,
        # it can only make the machine look busier than it was.
        ours = sum(now[pid] - before for pid, before in self._ours.items() if pid in now)
        ours += sum(ticks for pid, ticks in now.items() if pid not in self._ours)
        return max(0.0, (busy - ours) / TICKS / elapsed) if elapsed > 0 else 0.0
