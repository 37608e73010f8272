"""Raw sockets for hostile-client tests: exact bytes out (no client library that would
normalise a path or fix a header), the first answer parsed back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @property
    def from_proxy(self) -> bool:
        """Made by the proxy itself, not relayed from the upstream."""
        return self.headers.get("server") == "sla-proxy"


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def exchange(url: str, data: bytes, within: float = 10.0) -> Answer:
    """Send `data` on a new connection and read until the server closes it (rows ask
    for `Connection: close`); `within` only stops a hang."""
    host, port = address(url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        raw = b""
        async with asyncio.timeout(within):
            try:
                while chunk := await reader.read(65536):
                    raw += chunk
            except ConnectionResetError:
                pass
    finally:
        writer.close()
    return parse_answer(raw)


def parse_answer(raw: bytes) -> Answer:
    """The first final answer in `raw` (a `100 Continue` before it is skipped)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return Answer(None)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    if 100 <= status < 200:
        return parse_answer(rest)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return Answer(status, headers, _dechunk(rest))
    length = headers.get("content-length")
    return Answer(status, headers, rest if length is None else rest[: int(length)])


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def request(
    method: str = "POST",
    target: str = "/v1/chat/completions",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    version: str = "HTTP/1.1",
) -> bytes:
    """A well-formed request with `Connection: close`, a Host (`proxy.test` unless
    given) and a Content-Length."""
    headers = {"Host": "proxy.test", **(headers or {})}
    lines = [f"{method} {target} {version}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
        lines.append("Content-Type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
