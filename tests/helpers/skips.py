"""The suite's one rule about skips: only the real-vLLM checks (tests/e2e_vllm, run
by `make e2e-vllm`) may skip. Any other skip is a gap (most often a tool that is
not installed), so it is reported as a failure, and the run ends with one line
saying how many real-vLLM checks were skipped and how to run them."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

E2E_VLLM = "tests/e2e_vllm/"
VLLM_URL = "SLA_PROXY_VLLM_URL"  # set by `make e2e-vllm` (tests/e2e_vllm/run.sh)


def _reason(report: pytest.TestReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipLedger:
    """A pytest plugin: counts the allowed skips, turns every other one into a failure."""

    def __init__(self) -> None:
        self.vllm_skipped = 0

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not report.skipped or hasattr(report, "wasxfail"):
            return report
        if report.nodeid.startswith(E2E_VLLM):
            self.vllm_skipped += 1
            return report
        report.outcome = "failed"
        report.longrepr = (
            f"skipped outside the real-vLLM checks, which is a gap: {_reason(report)}\n"
            "(a missing tool must fail naming its install command: tests/helpers/tools.py)"
        )
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Under `make e2e-vllm` a skip is an inconclusive check; -rs lists its reason.
        if self.vllm_skipped and not os.environ.get(VLLM_URL):
            writer = config.get_terminal_writer()
            writer.line(
                f"{self.vllm_skipped} tests skipped: the real-vLLM checks, run by make e2e-vllm",
                yellow=True,
            )
