"""Reading the proxy's metrics the way a scrape sees them (never a client object's
private value)."""

from __future__ import annotations

from proxy.server.state import ProxyState


def metric(state: ProxyState, name: str, **labels: str) -> float:
    """The exported sample `name{labels}`; a series that does not exist fails the test."""
    value = state.families.registry.get_sample_value(name, labels)
    assert value is not None, f"no series {name}{labels}"
    return value
