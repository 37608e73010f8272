from __future__ import annotations

import pytest

from tests.helpers.controllers import ObsFactory, make_observation


@pytest.fixture
def make_obs() -> ObsFactory:
    return make_observation
