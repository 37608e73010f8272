"""One wrk run: POST a fixed body for a few seconds at a fixed number of connections,
pinned to the load generator's CPU; its figures come from the Lua `done` hook as one
JSON line (exact microseconds, no parsing of wrk's human-readable units)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from proxy.bench.suite.payloads import WRK_MARKER, wrk_script
from proxy.bench.suite.processes import ServiceError, pinned


@dataclass(frozen=True, slots=True)
class WrkResult:
    connections: int
    requests: int
    seconds: float
    socket_errors: int  # connect, read, write, timeout
    status_errors: int  # answers other than 2xx/3xx
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


def parse(output: str, connections: int) -> WrkResult:
    for line in output.splitlines():
        if line.startswith(WRK_MARKER):
            data = json.loads(line[len(WRK_MARKER) :])
            return WrkResult(
                connections,
                int(data["requests"]),
                data["duration_us"] / 1e6,
                int(data["socket_errors"]),
                int(data["status_errors"]),
                data["p50_us"] / 1000,
                data["p90_us"] / 1000,
                data["p99_us"] / 1000,
            )
    tail = " | ".join(output.strip().splitlines()[-3:])
    raise ServiceError(f"wrk printed no result line: {tail or 'no output'}")


def write_script(folder: Path, name: str, body: bytes) -> Path:
    path = folder / f"{name}.lua"
    path.write_text(wrk_script(body))
    return path


async def run_wrk(
    binary: str, url: str, script: Path, connections: int, seconds: float, cpu: int | None
) -> WrkResult:
    # wrk's -d takes whole seconds (units s, m, h); its own measured duration is used.
    argv = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    argv += ["--timeout", "5s", "-s", str(script), f"{url}/v1/chat/completions"]
    process = await asyncio.create_subprocess_exec(
        *pinned(argv, cpu), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise ServiceError(f"wrk exited with {process.returncode}: {text.strip()[-200:]}")
    return parse(text, connections)
