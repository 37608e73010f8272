"""Helpers shared by the test packages, always imported as `tests.helpers.<module>`
(never from a conftest): polling, settings, stub upstreams, fakes."""
