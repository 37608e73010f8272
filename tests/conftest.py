"""Suite-wide plugins. Fixtures live next to the tests that use them; helpers in
tests/helpers (imported as `tests.helpers.<module>`)."""

from __future__ import annotations

import pytest

from tests.helpers.skips import SkipLedger

pytest_plugins = ["pytester"]  # tests/test_skip_ledger.py runs small suites in-process


def pytest_configure(config: pytest.Config) -> None:
    # Only the real-vLLM checks may skip; any other skip fails (tests/helpers/skips.py).
    config.pluginmanager.register(SkipLedger(), "skip-ledger")
