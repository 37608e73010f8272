"""Who the client is, as the upstream hears it: one policy for Forwarded (RFC 7239),
X-Forwarded-* and X-Real-IP.

A peer inside `--trusted-proxies` is a proxy of ours: what it says about the client is
kept, and this hop is appended (Forwarded, X-Forwarded-For) or filled in where it said
nothing. Any other peer is the client itself, and whatever it claims in these headers
is dropped and replaced by what the connection shows. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Network = IPv4Network | IPv6Network

FORWARDED = "Forwarded"
XFF = "X-Forwarded-For"
XFP = "X-Forwarded-Proto"
XFH = "X-Forwarded-Host"
REAL_IP = "X-Real-IP"


def is_forwarding_header(lowered_name: str) -> bool:
    return lowered_name in ("forwarded", "x-real-ip") or lowered_name.startswith("x-forwarded-")


_PEERS_CACHED = 4096  # distinct peer addresses remembered, then the memory starts over


class ForwardingPolicy:
    def __init__(self, trusted: Sequence[Network]) -> None:
        self._trusted = tuple(trusted)
        # peer -> (trusted?, its RFC 7239 node): an address is parsed once, not per request
        self._peers: dict[str | None, tuple[bool, str]] = {}

    def _peer(self, peer: str | None) -> tuple[bool, str]:
        known = self._peers.get(peer)
        if known is None:
            if len(self._peers) >= _PEERS_CACHED:
                self._peers.clear()
            known = self._peers[peer] = (self._trusts(peer), _node(peer))
        return known

    def trusts(self, peer: str | None) -> bool:
        return self._peer(peer)[0]

    def _trusts(self, peer: str | None) -> bool:
        address = _address(peer)
        if address is None:
            return False
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._trusted)

    def headers(
        self,
        incoming: Iterable[tuple[str, str]],
        peer: str | None,
        scheme: str,
        host: str | None,
    ) -> list[tuple[str, str]]:
        """The forwarding headers to send upstream, given the request's own (all of its
        headers may be passed; only the forwarding ones are looked at)."""
        kept: dict[str, list[str]] = {}
        trusted, hop = self._peer(peer)
        if trusted:
            for name, value in incoming:
                if is_forwarding_header(name.lower()):
                    kept.setdefault(name.lower(), []).append(value)
        out: list[tuple[str, str]] = [
            (FORWARDED, _appended(kept.pop("forwarded", []), _element(hop, scheme, host))),
            (XFF, _appended(kept.pop("x-forwarded-for", []), peer or "unknown")),
            (XFP, _first(kept.pop("x-forwarded-proto", []), scheme)),
            (REAL_IP, _first(kept.pop("x-real-ip", []), peer or "unknown")),
        ]
        forwarded_host = _first(kept.pop("x-forwarded-host", []), host)
        if forwarded_host:
            out.append((XFH, forwarded_host))
        out.extend(_restore(kept))  # any other X-Forwarded-* of a trusted proxy
        return out


def _address(peer: str | None) -> IPv4Address | IPv6Address | None:
    if not peer:
        return None
    try:
        return ipaddress.ip_address(peer)
    except ValueError:
        return None


def _node(peer: str | None) -> str:
    """RFC 7239 §6: an IPv6 node is bracketed and quoted; an unknown one says so."""
    address = _address(peer)
    if address is None:
        return "unknown"
    if isinstance(address, IPv6Address):
        return f'"[{address}]"'
    return str(address)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _element(node: str, scheme: str, host: str | None) -> str:
    element = f"for={node};proto={scheme}"
    return f"{element};host={_quoted(host)}" if host else element


def _appended(prior: list[str], value: str) -> str:
    return ", ".join([*prior, value])


def _first(prior: list[str], fallback: str | None) -> str:
    return ", ".join(prior) if prior else (fallback or "")


def _restore(kept: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, values in kept.items() for value in values]
