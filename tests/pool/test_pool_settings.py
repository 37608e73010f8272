"""The pool's settings: repeatable `--upstream`, comma-separated `PROXY_UPSTREAM`,
`name=url` entries; one upstream is spelt exactly as before."""

from __future__ import annotations

import argparse

import pytest

from proxy.server.cli import SettingsError, configure, settings_from_args
from proxy.settings import UpstreamSpec
from tests.helpers.settings import make_settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(list(argv))


def test_one_bare_upstream_is_named_by_host_and_port() -> None:
    settings = make_settings(upstream="http://127.0.0.1:8000")
    assert settings.upstreams == (UpstreamSpec("127.0.0.1:8000", "http://127.0.0.1:8000"),)
    assert settings.upstream_base == "http://127.0.0.1:8000"
    assert make_settings().upstream == "http://127.0.0.1:8000/"


def test_the_option_repeats_and_entries_may_be_named() -> None:
    args = parse("--upstream", "h100=http://10.0.0.1:8000/", "--upstream", "http://spark:8001")
    settings = settings_from_args(args)
    assert settings.upstreams == (
        UpstreamSpec("h100", "http://10.0.0.1:8000"),
        UpstreamSpec("spark:8001", "http://spark:8001"),
    )


def test_the_environment_takes_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_UPSTREAM", "a=http://x:1, b=http://y:2")
    settings = settings_from_args(parse())
    assert [s.name for s in settings.upstreams] == ["a", "b"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("foo", "valid URL"),
        ("a=http://x:1,a=http://y:2", "names must differ"),
        ("http://x:1,http://x:1", "names must differ"),
        ("bad name=http://x:1", "letters, digits"),
    ],
)
def test_bad_entries_are_one_clear_line(value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings_from_args(parse("--upstream", value))
    (line,) = info.value.problems
    assert line.startswith("--upstream / PROXY_UPSTREAM:") and problem in line


def test_ejection_defaults_follow_the_single_upstream_settings() -> None:
    assert make_settings(upstream_down_after=7).eject_threshold == 7
    assert make_settings(upstream_down_after=7, eject_after=2).eject_threshold == 2
