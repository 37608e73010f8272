"""Reading the GPUs with `nvidia-smi` (the lab's part 1: name, total and free memory).

The command runner is a parameter, so tests feed recorded nvidia-smi output and the
failure paths (no binary, no driver, a hang) without a GPU. A failure is not an
error here: the planner falls back to an assumed hardware profile and says why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

QUERY = (
    "nvidia-smi",
    "--query-gpu=name,memory.total,memory.free",
    "--format=csv,noheader,nounits",
)
TIMEOUT_S = 10.0  # a wedged driver can make nvidia-smi hang; the planner must not

# Given argv, returns stdout; raises OSError (no binary), subprocess.CalledProcessError
# (non-zero exit) or subprocess.TimeoutExpired, as `subprocess.run` does.
Runner = Callable[[Sequence[str]], str]


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int  # nvidia-smi's order, which is its index (CUDA_VISIBLE_DEVICES does not apply)
    name: str
    total_mib: float | None  # None where nvidia-smi says [N/A]: unified memory (GB10)
    free_mib: float | None


@dataclass(frozen=True, slots=True)
class GpuProbe:
    gpus: tuple[Gpu, ...]
    problem: str | None = None  # why no GPU was read, in words for the output


def run_command(argv: Sequence[str]) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
    return done.stdout


def _mib(text: str) -> float | None:
    """A number of MiB, or None for nvidia-smi's placeholders ([N/A], [Not Supported])."""
    text = text.strip()
    if text.startswith("["):
        return None
    value = float(text)
    if not value >= 0:
        raise ValueError(f"negative memory: {text!r}")
    return value


def parse_gpus(stdout: str) -> tuple[Gpu, ...]:
    """Parse `name, total, free` lines (MiB, no header, no units)."""
    gpus: list[Gpu] = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        # From the right: a product name could contain a comma, the numbers cannot.
        parts = line.rsplit(",", 2)
        if len(parts) != 3:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        name, total, free = parts
        try:
            gpus.append(Gpu(len(gpus), name.strip(), _mib(total), _mib(free)))
        except ValueError:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}") from None
    return tuple(gpus)


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def probe_gpus(runner: Runner = run_command) -> GpuProbe:
    try:
        stdout = runner(QUERY)
    except FileNotFoundError:
        return GpuProbe((), "no nvidia-smi on PATH")
    except subprocess.CalledProcessError as exc:
        said = _first_line(exc.stderr) or _first_line(exc.stdout)
        return GpuProbe(
            (), f"nvidia-smi failed (exit {exc.returncode})" + (f": {said}" if said else "")
        )
    except subprocess.TimeoutExpired:
        return GpuProbe((), f"nvidia-smi did not answer within {TIMEOUT_S:g} s")
    except OSError as exc:
        return GpuProbe((), f"nvidia-smi could not run: {exc}")
    try:
        gpus = parse_gpus(stdout)
    except ValueError as exc:
        return GpuProbe((), str(exc))
    return GpuProbe(gpus, None if gpus else "nvidia-smi listed no GPU")
