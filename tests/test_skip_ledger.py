"""The skip rule of the suite (tests/helpers/skips.py), on small suites run in-process."""

from __future__ import annotations

import pytest

CONFTEST = """
from tests.helpers.skips import SkipLedger

def pytest_configure(config):
    config.pluginmanager.register(SkipLedger(), "skip-ledger")
"""

SKIPS = "import pytest\n\ndef test_skips():\n    pytest.skip('no tool here')\n"


def _suite(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    for folder in ("tests/e2e_vllm", "tests/deploy"):
        (pytester.path / folder).mkdir(parents=True)
    (pytester.path / "tests/e2e_vllm/test_real.py").write_text(SKIPS)


def test_a_real_vllm_skip_is_counted_in_the_last_line(pytester: pytest.Pytester) -> None:
    _suite(pytester)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(skipped=1)
    assert result.outlines[-1] == "1 tests skipped: the real-vLLM checks, run by make e2e-vllm"


def test_under_make_e2e_vllm_the_line_is_not_printed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suite(pytester)
    monkeypatch.setenv("SLA_PROXY_VLLM_URL", "http://127.0.0.1:1")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(skipped=1)
    assert "the real-vLLM checks, run by make e2e-vllm" not in result.stdout.str()


def test_a_skip_anywhere_else_fails_with_its_reason(pytester: pytest.Pytester) -> None:
    _suite(pytester)
    (pytester.path / "tests/deploy/test_tool.py").write_text(SKIPS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(skipped=1, failed=1)
    result.stdout.fnmatch_lines(["*skipped outside the real-vLLM checks*: no tool here*"])


def test_an_expected_failure_is_not_a_skip(pytester: pytest.Pytester) -> None:
    _suite(pytester)
    (pytester.path / "tests/deploy/test_x.py").write_text(
        "import pytest\n\n@pytest.mark.xfail(strict=True)\ndef test_x():\n    assert False\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(skipped=1, xfailed=1)
