"""CPU over one measurement window: each server's process tree (nginx's worker is
its master's child), this process and the children it has reaped (every wrk run),
and what the machine's other tenants used meanwhile, in cores."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

from proxy.bench.suite.procfs import machine_busy_seconds, read_proc


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/PID/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:  # the task ended while we looked
                continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in descendants(pid):
        try:
            total += read_proc(member).cpu_seconds
        except (OSError, KeyError, IndexError):  # exited between listing and reading
            continue
    return total


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


@dataclass(frozen=True, slots=True)
class Reading:
    servers: dict[str, float]  # name -> CPU seconds of its tree
    own: float
    busy: float  # the whole machine's busy CPU seconds
    wall: float


@dataclass(frozen=True, slots=True)
class Spent:
    wall: float
    servers: dict[str, float]  # name -> CPU seconds in the window
    others_cores: float  # the other tenants' use, in cores, averaged over the window


class CpuMeter:
    def __init__(self, servers: dict[str, int]) -> None:
        self.servers = servers  # name -> pid

    def read(self) -> Reading:
        trees = {name: tree_cpu_seconds(pid) for name, pid in self.servers.items()}
        return Reading(trees, _own_cpu_seconds(), machine_busy_seconds(), time.monotonic())

    @staticmethod
    def spent(before: Reading, after: Reading) -> Spent:
        servers = {n: after.servers[n] - before.servers.get(n, 0.0) for n in after.servers}
        ours = sum(servers.values()) + after.own - before.own
        wall = after.wall - before.wall
        others = max(0.0, after.busy - before.busy - ours) / wall if wall > 0 else 0.0
        return Spent(wall, servers, others)
