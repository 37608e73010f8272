import asyncio
import json
from pathlib import Path

import pytest

from proxy.bench import plot
from proxy.cli import main
from tests.helpers.stub import running_stub


async def bench(*argv: str) -> int:
    # The CLI runs its own event loop; keep it off the loop that serves the stub.
    return await asyncio.to_thread(main, ["bench", *argv])


async def test_cli_sweeps_prints_the_table_and_writes_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Hello?"}\n')
    async with running_stub() as (url, state):
        code = await bench(
            "--url", url, "--concurrency", "1,2", "--requests", "4", "--max-tokens", "3",
            "--ignore-eos", "--prompts", str(prompts), "--slo", "ttft=5s,tpot=1000ms",
            "--out", str(tmp_path / "out"), "--api", "completions",
        )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0
    assert "goodput" in out.out and "stub-model" in out.out
    assert {b["prompt"] for b in state.bodies} == {"Hello?"}
    assert {b["max_tokens"] for b in state.bodies} == {3}
    data = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [r["ok"] for r in data["results"]] == [4, 4]
    assert (tmp_path / "out" / "sweep.csv").exists()
    assert (tmp_path / "out" / "sweep.png").exists() == plot.available()


async def test_cli_without_matplotlib_says_so_once_and_writes_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plot, "available", lambda: False)
    async with running_stub() as (url, _):
        code = await bench("--url", url, "--concurrency", "1", "--requests", "2",
                           "--max-tokens", "2", "--out", str(tmp_path))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("matplotlib not installed") == 1
    assert (tmp_path / "sweep.json").exists() and not (tmp_path / "sweep.png").exists()


async def test_cli_rejects_a_bad_slo_before_sending_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_stub() as (url, state):
        code = await bench("--url", url, "--slo", "latency=1")
    assert code == 2 and not state.bodies
    assert "bad SLO" in capsys.readouterr().err


async def test_cli_fails_with_one_line_when_the_endpoint_is_down(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_stub() as (url, _):
        pass
    code = await bench("--url", url, "--concurrency", "1", "--requests", "1")
    assert code == 1
    assert "cannot list models" in capsys.readouterr().err
