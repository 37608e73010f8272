"""`sla-proxy sim` and `python -m proxy.sim.sweep` from the command line."""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from proxy.cli import build_parser
from proxy.sim import sweep
from proxy.sim.cli import engine_specs


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


def _specs(*argv: str) -> list[tuple[str, int, int]]:
    args = build_parser("sim").parse_args(["sim", *argv])
    return [(spec.profile, spec.port, spec.seed) for spec in engine_specs(args)]


def test_one_engine_by_default_on_the_port() -> None:
    assert _specs("--port", "8100") == [("h100-llama3-8b", 8100, 0)]


def test_engines_n_serves_copies_of_the_profile_on_consecutive_ports() -> None:
    assert _specs("--engines", "3", "--port", "9000", "--profile", "cpu-tiny", "--seed", "5") == [
        ("cpu-tiny", 9000, 5),
        ("cpu-tiny", 9001, 6),
        ("cpu-tiny", 9002, 7),
    ]
    assert _specs("--engines", "2", "--port", "0") == [
        ("h100-llama3-8b", 0, 0),
        ("h100-llama3-8b", 0, 1),
    ]


def test_engine_entries_keep_their_order_profiles_and_ports() -> None:
    argv = ["--port", "7000", "--engine", "h100-llama3-8b", "--engine", "dgx-spark-llama3-8b:7005"]
    assert _specs(*argv) == [("h100-llama3-8b", 7000, 0), ("dgx-spark-llama3-8b", 7005, 1)]


@pytest.mark.parametrize(
    "argv",
    [
        ["--engines", "0"],
        ["--engines", "2", "--engine", "cpu-tiny"],  # one way or the other
        ["--engine", "nope:8000"],
        ["--engine", "cpu-tiny:http"],
        ["--engine", "cpu-tiny:70000"],
        ["--port", "-1"],
    ],
)
def test_pool_options_are_refused_when_wrong(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser("sim").parse_args(["sim", *argv])
    assert caught.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "cpu-tiny:8000", "--engine", "cpu-tiny:8000"], "two engines on one port"),
        (["--port", "8000", "--engine", "cpu-tiny", "--engine", "cpu-tiny:8000"], "one port"),
        (["--port", "65535", "--engines", "2"], "past port 65535"),
    ],
)
def test_engines_that_cannot_all_listen_are_refused(argv: list[str], message: str) -> None:
    args = build_parser("sim").parse_args(["sim", *argv])
    with pytest.raises(ValueError, match=message):
        engine_specs(args)


def _serve_pool(argv: list[str], engines: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "sim", *argv],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(engines)]  # printed once all listen
    return proc, [line.rsplit(" ", 1)[-1].strip() for line in lines]


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        loaded: dict[str, object] = json.load(resp)
        return loaded


def test_one_process_serves_a_heterogeneous_pool_with_faults_per_engine() -> None:
    argv = ["--port", "0", "--engine", "cpu-tiny", "--engine", "dgx-spark-llama3-8b"]
    proc, urls = _serve_pool(argv, 2)
    try:
        assert len(set(urls)) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls), urls
        profiles = [_get_json(f"{url}/sim/state")["profile"] for url in urls]
        assert profiles == ["cpu-tiny", "dgx-spark-llama3-8b"]
        # each engine is its own simulator: a fault set on one leaves the other serving
        request = urllib.request.Request(
            f"{urls[0]}/sim/faults",
            data=json.dumps({"error_rate": 1.0, "error_status": 503}).encode(),
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).close()
        assert _get_json(f"{urls[0]}/sim/faults")["error_rate"] == 1.0
        assert _get_json(f"{urls[1]}/sim/faults")["error_rate"] == 0.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_engines_n_listen_on_consecutive_ports() -> None:
    for _ in range(5):  # base+1 may be taken by another program: then try another base
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        argv = ["--engines", "2", "--port", str(base), "--profile", "cpu-tiny"]
        proc, urls = _serve_pool(argv, 2)
        try:
            if proc.poll() is None:
                assert urls == [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"]
                for url in urls:
                    with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                        assert resp.status == 200
                return
            assert proc.wait() == 1  # a port in use: one line, exit 1
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=10) == 0
            if proc.stdout is not None:
                proc.stdout.close()
    raise AssertionError("no two consecutive free ports in five tries")
