"""Stand-ins for nvidia-smi (no GPU on the test machines): a runner that replays a
file of its output, and a fake executable put first on PATH for the real subprocess."""

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from proxy.capacity.gpu import QUERY, Runner

OUTPUTS = Path(__file__).parents[1] / "capacity" / "nvidia_smi"


def replay(name: str) -> Runner:
    """A runner that answers the planner's query with the text of nvidia_smi/`name`."""

    def runner(argv: Sequence[str]) -> str:
        assert tuple(argv) == QUERY
        return (OUTPUTS / name).read_text()

    return runner


def fake_binary(folder: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An executable `nvidia-smi` (a shell script) first on PATH for this test."""
    binary = folder / "nvidia-smi"
    binary.write_text("#!/bin/sh\n" + script)
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
