"""The reference sections' pure parts: fixed bodies, wrk's result line, the tool
check, nginx's configuration, and the tables built from runs. No speed is asserted."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from proxy.bench.suite import nginx, payloads, reference, streams, tools, wrk
from proxy.bench.suite.cli import configure as configure_cli
from proxy.bench.suite.cli import run
from proxy.bench.suite.processes import ServiceError
from proxy.bench.suite.refconfig import RefConfig, option_pairs
from proxy.server.sse import SseRelay


def test_bodies_have_the_sizes_of_the_issue() -> None:
    assert len(payloads.request_body(stream=False)) == 263
    assert len(payloads.request_body(stream=True)) == 263
    assert len(payloads.json_answer()) == 565
    assert json.loads(payloads.json_answer())["usage"]["completion_tokens"] == 48


def test_sse_answer_has_52_events_and_a_usage_event_the_relay_keeps() -> None:
    answer = payloads.sse_answer()
    assert answer.count(b"\n\n") == 52 and answer.endswith(b"data: [DONE]\n\n")
    relay = SseRelay(strip_usage=False)  # the streamed request asks for usage itself
    out, first = relay.feed(answer)
    assert first and out == answer
    assert relay.usage is not None and relay.usage["completion_tokens"] == 48


def test_wrk_script_posts_the_body_and_prints_one_result_line() -> None:
    script = payloads.wrk_script(b'{"a": 1}')
    assert 'wrk.method = "POST"' in script and 'wrk.body = [[{"a": 1}]]' in script
    assert payloads.WRK_MARKER in script and "latency:percentile(50)" in script
    with pytest.raises(ValueError, match="Lua long string"):
        payloads.wrk_script(b'{"a": [[1]]}')


def test_wrk_result_line_is_parsed_in_milliseconds() -> None:
    line = (
        '{"requests": 3000, "duration_us": 2000000, "bytes": 9, "socket_errors": 1, '
        '"status_errors": 2, "p50_us": 210.0, "p90_us": 300.0, "p99_us": 900.0, "mean_us": 1}'
    )
    result = wrk.parse(f"Running 2s test\n{payloads.WRK_MARKER}{line}\n", connections=64)
    assert (result.rate, result.errors, result.p50_ms, result.p99_ms) == (1500.0, 3, 0.21, 0.9)


def test_wrk_output_without_the_result_line_is_an_error() -> None:
    with pytest.raises(ServiceError, match="no result line"):
        wrk.parse("unable to connect to 127.0.0.1:1\n", connections=1)


def test_missing_tools_without_root_name_the_command_to_run() -> None:
    with pytest.raises(ServiceError) as caught:
        tools.ensure(which=lambda name: None, euid=1000, run=lambda argv: 0)
    assert tools.INSTALL in str(caught.value)
    assert "apt-get install -y --no-install-recommends nginx wrk" in tools.INSTALL


def test_missing_tools_as_root_are_installed_with_apt_get() -> None:
    installed: set[str] = set()
    commands: list[list[str]] = []

    def which(name: str) -> str | None:
        return f"/usr/bin/{name}" if name in installed or name == "nginx" else None

    def run_apt(argv: object) -> int:
        command = list(argv)  # type: ignore[call-overload]
        commands.append(command)
        if "install" in command:
            installed.update(command[command.index("--no-install-recommends") + 1 :])
        return 0

    found = tools.ensure(which=which, euid=0, run=run_apt)
    assert found == {"nginx": "/usr/bin/nginx", "wrk": "/usr/bin/wrk"}
    assert commands == [
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "wrk"],
    ]


def test_present_tools_install_nothing() -> None:
    def refuse(argv: object) -> int:
        raise AssertionError("nothing to install")

    assert tools.ensure(which=lambda name: f"/x/{name}", euid=0, run=refuse)["wrk"] == "/x/wrk"


def test_nginx_config_serves_both_answers_and_proxies_with_a_keepalive_pool(
    tmp_path: Path,
) -> None:
    text = nginx.config(tmp_path, {"json": 1001, "sse": 1002}, {"json": 2001, "sse": 2002})
    assert "daemon off;" in text and "worker_processes 1;" in text
    assert f"alias {tmp_path}/answer.sse;" in text and "default_type text/event-stream;" in text
    assert text.count("error_page 405 =200 $uri;") == 2
    assert text.count("keepalive 256;") == 2 and text.count("proxy_buffering off;") == 2
    assert 'proxy_set_header Connection "";' in text and "proxy_http_version 1.1;" in text
    for line in text.splitlines():
        if "_path " in line or line.startswith(("pid ", "error_log ")):
            assert str(tmp_path) in line, line


def _run(round_: int, target: str, rate: float, p50: float) -> reference.RefRun:
    result = wrk.WrkResult(64, int(rate * 2), 2.0, 0, 0, p50, p50, p50)
    return reference.RefRun("json", 64, round_, target, result, 100.0, 0.1)


def test_reference_ratio_is_the_median_of_per_round_ratios() -> None:
    runs = []
    for number, (bare, sla) in enumerate([(100.0, 50.0), (200.0, 180.0), (100.0, 70.0)]):
        runs += [_run(number, "bare aiohttp", bare, 0.2), _run(number, "sla-proxy", sla, 0.5)]
    (row,) = reference.rows(runs)
    assert (row.ratio, row.ratio_min, row.ratio_max) == (0.7, 0.5, 0.9)
    assert row.rate["bare aiohttp"] == 100.0 and row.rate_max["sla-proxy"] == 180.0
    assert row.added_p50_ms == pytest.approx(0.3)
    assert set(row.rate) == {"bare aiohttp", "sla-proxy"}


def _paced(round_: int, path: str, p50: float, p99: float) -> streams.PacedRun:
    return streams.PacedRun(round_, path, 10, 640, 600, 0, p50, p99, None, None, 0.0)


def test_paced_added_delay_is_taken_against_direct_within_each_round() -> None:
    runs = [
        _paced(0, "direct", 0.1, 1.0),
        _paced(0, "sla-proxy", 0.3, 4.0),
        _paced(1, "direct", 0.5, 2.0),
        _paced(1, "sla-proxy", 0.6, 3.0),
    ]
    rows = {row.path: row for row in streams.paced_rows(runs)}
    assert rows["sla-proxy"].added_p99_ms == pytest.approx(2.0)  # median of 3.0 and 1.0
    assert rows["sla-proxy"].added_p50_ms == pytest.approx(0.15)
    assert rows["direct"].added_p50_ms == 0.0


def test_reference_config_rejects_unknown_sections() -> None:
    with pytest.raises(ValueError, match="sections must be among"):
        RefConfig(sections=("sweep", "everything"))
    assert RefConfig(sections=("paced",)).needs_tools is False
    assert RefConfig(sections=("clients",)).needs_tools is True


def test_proxy_options_are_name_value_pairs() -> None:
    assert option_pairs(["--client-header-timeout=5", "max-connections = 9"]) == (
        ("client-header-timeout", "5"),
        ("max-connections", "9"),
    )
    with pytest.raises(ValueError, match="NAME=VALUE"):
        option_pairs(["client-header-timeout"])


def test_cli_rejects_an_unknown_section_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    configure_cli(parser)
    assert run(parser.parse_args(["--sections", "nginx-only"])) == 2
    assert "sections must be among" in capsys.readouterr().err


def test_cli_without_the_tools_and_root_fails_first_with_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools, "_which", lambda name: None)
    monkeypatch.setattr(tools.os, "geteuid", lambda: 1000)
    parser = argparse.ArgumentParser()
    configure_cli(parser)
    assert run(parser.parse_args(["--sections", "sweep,reference"])) == 1
    err = capsys.readouterr().err
    assert tools.INSTALL in err and "micro-benchmarks" not in err


def test_profile_summary_counts_self_and_total_time_per_frame() -> None:
    from proxy.bench.suite.hotpath_profile import summarise

    main, handle = "main (proxy/cli.py:1)", "handle (proxy/server/forward.py:44)"
    raw = (
        f"{main};{handle};feed (proxy/server/sse.py:29) 3\n"
        f"{main};{handle} 1\n"
        f"{main};_writelines (aiohttp/http_writer.py:106) 4\n"
    )
    text = summarise(raw)
    assert text.startswith("8 samples")
    assert "| 50.0 | 50.0 | `_writelines (aiohttp/http_writer.py:106)` |" in text
    assert "| 37.5 | 37.5 | `feed (proxy/server/sse.py:29)` |" in text
    assert "| 50.0 | `aiohttp` |" in text  # self time per package
    assert "| 50.0 | 12.5 | `handle (proxy/server/forward.py:44)` |" in text  # own functions
