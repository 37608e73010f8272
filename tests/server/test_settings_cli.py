"""Invalid settings exit 2 with one clear line per problem, before anything listens."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.server.cli import SettingsError, configure, settings_from_args
from proxy.settings import Algorithm

ROOT = Path(__file__).resolve().parents[2]


class Result:
    def __init__(self, returncode: int, stderr: str) -> None:
        self.returncode, self.stderr = returncode, stderr


@pytest.fixture
def serve(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., Result]:
    """`sla-proxy serve ARGS` in-process, up to the point where it would listen."""
    monkeypatch.chdir(tmp_path)  # no stray .env

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", *args])
        return Result(int(exit_info.value.code or 0), capsys.readouterr().err)

    return run


def test_the_real_command_exits_2_before_listening() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--min-limit", "9", "--max-limit", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "sla-proxy: invalid setting settings: min_limit (9) > max_limit (3)"
    )


def parse(*args: str) -> object:
    import argparse

    parser = argparse.ArgumentParser()
    configure(parser)
    return settings_from_args(parser.parse_args(list(args)))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--upstream", "not a url"], "--upstream / PROXY_UPSTREAM"),
        (["--port", "70000"], "--port / PROXY_PORT"),
        (["--min-limit", "10", "--max-limit", "5"], "min_limit (10) > max_limit (5)"),
        (["--backoff", "1.5"], "--backoff / PROXY_BACKOFF"),
        (["--api-key-priorities", "{oops"], "not valid JSON"),
    ],
)
def test_bad_setting_exits_2_with_a_line_naming_it(
    serve: Callable[..., Result], args: list[str], needle: str
) -> None:
    result = serve(*args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert all(line.startswith("sla-proxy: invalid setting") for line in result.stderr.splitlines())


def test_every_problem_gets_its_own_line(serve: Callable[..., Result]) -> None:
    result = serve("--port", "0x", "--backoff", "7", "--queue-size", "-1")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 3


def test_unknown_option_exits_2(serve: Callable[..., Result]) -> None:
    result = serve("--no-such-option", "1")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_environment_is_validated_too(serve: Callable[..., Result]) -> None:
    result = serve(env={"PROXY_ALGORITHM": "magic"})
    assert result.returncode == 2
    assert "PROXY_ALGORITHM" in result.stderr


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PROXY_SLA_TTFT=0.25\nPROXY_ALGORITHM=fixed\n")
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        settings = parse()
    finally:
        os.chdir(old)
    assert settings.sla_ttft == 0.25  # type: ignore[attr-defined]
    assert settings.algorithm is Algorithm.FIXED  # type: ignore[attr-defined]


def test_command_line_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_INITIAL_LIMIT", "4")
    settings = parse("--initial-limit", "16")
    assert settings.initial_limit == 16  # type: ignore[attr-defined]


def test_settings_are_frozen() -> None:
    settings = parse()
    with pytest.raises(ValueError):
        settings.port = 1  # type: ignore[attr-defined]


def test_settings_error_lists_problems() -> None:
    with pytest.raises(SettingsError) as info:
        parse("--sla-ttft", "-1", "--window-min-samples", "0")
    assert len(info.value.problems) == 2


def test_no_sla_target_is_warned_about() -> None:
    assert parse("--sla-ttft", "0.5").warnings() == []  # type: ignore[attr-defined]
    (warning,) = parse().warnings()  # type: ignore[attr-defined]
    assert "no SLA target" in warning
    assert parse("--algorithm", "fixed").warnings() == []  # type: ignore[attr-defined]


def test_queue_timeout_is_an_upper_bound_that_does_not_depend_on_the_targets() -> None:
    assert parse().queue_timeout == 30.0  # type: ignore[attr-defined]
    assert parse("--sla-ttft", "0.5").queue_timeout == 30.0  # type: ignore[attr-defined]


def test_trusted_proxies_are_comma_separated_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse("--trusted-proxies", "10.0.0.0/8, 2001:db8::/32,192.168.1.7")
    shown = [str(network) for network in settings.trusted_proxies]  # type: ignore[attr-defined]
    assert shown == ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7/32"]
    monkeypatch.setenv("PROXY_TRUSTED_PROXIES", "172.16.0.0/12")
    assert [str(n) for n in parse().trusted_proxies] == ["172.16.0.0/12"]  # type: ignore[attr-defined]


def test_a_bad_cidr_is_one_line_naming_the_option(serve: Callable[..., Result]) -> None:
    result = serve("--trusted-proxies", "10.0.0.0/8,not-a-network")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "--trusted-proxies / PROXY_TRUSTED_PROXIES" in line


def test_the_priority_header_is_untrusted_by_default() -> None:
    assert parse().trust_priority_header is False  # type: ignore[attr-defined]
    assert parse("--trust-priority-header", "true").trust_priority_header is True  # type: ignore[attr-defined]
