"""`sla-proxy sim` and `python -m proxy.sim.sweep` from the command line."""

import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from proxy.cli import build_parser
from proxy.sim import sweep


def test_sim_options_parse_with_defaults() -> None:
    args = build_parser("sim").parse_args(["sim", "--port", "0", "--speed", "10"])
    assert (args.port, args.speed, args.profile, args.seed) == (0, 10.0, "h100-llama3-8b", 0)


def test_static_batching_options_parse() -> None:
    argv = ["sim", "--batching", "static", "--batch-size", "8", "--batch-timeout", "0.25"]
    args = build_parser("sim").parse_args(argv)
    assert (args.batching, args.batch_size, args.batch_timeout) == ("static", 8, 0.25)
    assert build_parser("sim").parse_args(["sim"]).batching == "continuous"


def test_stream_interval_counts_tokens_and_defaults_to_one_as_vllm() -> None:
    parse = build_parser("sim").parse_args
    assert parse(["sim"]).stream_interval == 1
    assert parse(["sim", "--stream-interval", "4"]).stream_interval == 4


@pytest.mark.parametrize(
    "argv",
    [
        ["--speed", "0"],
        ["--profile", "nope"],
        ["--speed", "x"],
        ["--stream-interval", "0.02"],  # the old meaning (seconds) is refused, not misread
        ["--stream-interval", "0"],
        ["--max-event-rate", "0"],
        ["--batching", "dynamic"],
        ["--batch-size", "0"],
        ["--batch-timeout", "-1"],
    ],
)
def test_sim_rejects_bad_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser("sim").parse_args(["sim", *argv])
    assert caught.value.code == 2


def test_sim_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "sim", "--port", "0", "--profile", "cpu-tiny"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server is listening (or dies)
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:"), line
        with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_sweep_prints_one_row_per_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert sweep.main(["--levels", "1,4", "--input-len", "64", "--output-len", "16"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["1", "4"]


def test_a_static_batch_larger_than_the_profile_allows_exits_with_one_line() -> None:
    argv = ["--port", "0", "--profile", "cpu-tiny", "--batching", "static", "--batch-size", "500"]
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "sim", *argv], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sla-proxy sim: batch_size 500 exceeds max_num_seqs 128"
    ]
