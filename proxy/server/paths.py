"""One canonical path per request, computed once from the request target: admission
decides on it and the upstream URL is built from it, so the two cannot disagree.

The bypass this closes: the proxy matched the raw path while the client library (yarl)
normalised `/v1/./chat/completions` on the way upstream, so a generation request ran
without a permit. Paths are not rewritten here (a rewrite is a second reading); a path
with more than one reading is refused with 400, as nginx refuses the ones it cannot
normalise. The one change made is RFC 3986 §6.2.2: percent-encoded unreserved
characters are decoded (`%63` is `c` to every server) and the hex digits of the other
escapes upper-cased. What is refused, and why:

- dot segments (`.`, `..`, also encoded): clients and servers resolve them differently;
- empty segments (`//`, a trailing slash): Starlette (vLLM) answers a trailing slash
  with a 307 whose Location names the upstream's own address;
- encoded `/` or `\\`, a raw `\\`: one segment to one server, two to another;
- controls, space, non-ASCII, encoded controls: uvicorn decodes `%0A` and Starlette's
  route pattern (`^...$`) matches before a trailing newline, so
  `/v1/chat/completions%0A` reached the generation route;
- a fragment, malformed escapes, anything but origin- or absolute-form.

The query string is kept byte for byte. Pure: no I/O.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from yarl import URL

from proxy.errors import AmbiguousPath

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_HEX = frozenset(string.hexdigits)
# The common case, checked in one pass: segments of unreserved characters, sub-delims,
# ':' and '@' (RFC 3986 pchar without escapes).
_PLAIN = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@]+)+")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


@dataclass(frozen=True, slots=True)
class Target:
    path: str  # canonical, still percent-encoded: exactly what goes upstream
    query: str | None  # as received; None when the target had no '?'

    def upstream_url(self, base: str) -> URL:
        """`base` + this target, verbatim (encoded=True: yarl neither re-quotes nor
        resolves dot segments)."""
        tail = self.path if self.query is None else f"{self.path}?{self.query}"
        return URL(base + tail, encoded=True)


def parse_target(raw: str) -> Target:
    """The request target as received (`request.raw_path`); raises `AmbiguousPath`."""
    if not raw.startswith("/"):
        # Absolute form: the authority is ignored (the upstream is configured, not chosen
        # by the client); only its path and query count.
        match = _ABSOLUTE.match(raw)
        if match is None:
            raise AmbiguousPath("The request target must be a path.")
        raw = raw[match.end() :]
        if not raw.startswith("/"):
            raw = "/" + raw
    if "#" in raw:
        raise AmbiguousPath("A request target cannot carry a fragment.")
    path, sep, query = raw.partition("?")
    return Target(canonical_path(path), query if sep else None)


def canonical_path(path: str) -> str:
    if path == "/":
        return path
    if _PLAIN.fullmatch(path) is None:
        path = _normalise_escapes(path)
    for segment in path.split("/")[1:]:
        if segment in ("", ".", ".."):
            raise AmbiguousPath(_SEGMENT_PROBLEM[segment])
    return path


_SEGMENT_PROBLEM = {
    "": "Empty path segments ('//' or a trailing '/') are ambiguous.",
    ".": "Dot segments ('/./') are ambiguous.",
    "..": "Dot segments ('/../') are ambiguous.",
}


def _normalise_escapes(path: str) -> str:
    if not path.startswith("/"):
        raise AmbiguousPath("The path must start with '/'.")
    out: list[str] = []
    index, size = 0, len(path)
    while index < size:
        char = path[index]
        if char == "%":
            digits = path[index + 1 : index + 3]
            if len(digits) != 2 or not _HEX.issuperset(digits):
                raise AmbiguousPath("Malformed percent-encoding in the path.")
            decoded = chr(int(digits, 16))
            if decoded in _UNRESERVED:
                out.append(decoded)
            elif decoded in "/\\":
                raise AmbiguousPath("Encoded slashes in the path are ambiguous.")
            elif decoded < " " or decoded == "\x7f":
                raise AmbiguousPath("Encoded control characters are not allowed in the path.")
            else:
                out.append("%" + digits.upper())
            index += 3
            continue
        if char == "\\":
            raise AmbiguousPath("Backslashes in the path are ambiguous.")
        if not " " < char < "\x7f":
            raise AmbiguousPath("Controls, spaces and non-ASCII must be percent-encoded.")
        out.append(char)
        index += 1
    return "".join(out)
