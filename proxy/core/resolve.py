"""DNS discovery of pool members (level 0: pure): what one look-up changes.

An upstream given as a hostname, re-resolved every `--resolve-interval`, is one member
per address it resolves to (`name@ip:port`), so a Kubernetes headless Service is the
pool. An address that disappears is drained (no new requests, those in flight finish),
never cut; one that comes back before its drain ended is simply serving again. A failed
or empty look-up changes nothing: a DNS hiccup must not empty the pool (members that
are really gone show as connect failures and are ejected).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass


def member_name(name: str, ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"{name}@{host}:{port}"


def member_url(scheme: str, ip: str, port: int, path: str = "") -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"{scheme}://{host}:{port}{path}"


def is_address(host: str) -> bool:
    """An IP literal needs no look-up."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Change:
    added: tuple[str, ...]  # new addresses: new members
    drained: tuple[str, ...]  # gone: drain them
    revived: tuple[str, ...]  # draining, resolved again: serving again


def diff(serving: Iterable[str], draining: Iterable[str], resolved: Iterable[str] | None) -> Change:
    """One look-up's result against the members of one upstream (addresses, in the
    order the resolver gave them); `resolved` None: the look-up failed."""
    serving_set, draining_set = set(serving), set(draining)
    found = list(dict.fromkeys(resolved or ()))  # resolver order, duplicates dropped
    if not found:
        return Change((), (), ())
    found_set = set(found)
    return Change(
        added=tuple(a for a in found if a not in serving_set and a not in draining_set),
        drained=tuple(sorted(serving_set - found_set)),
        revived=tuple(a for a in found if a in draining_set),
    )


__all__ = ["Change", "diff", "is_address", "member_name", "member_url"]
