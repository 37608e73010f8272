"""The hostile-input matrix, one row per case: the exact bytes a client sends, the answer
it gets (a status), and whether the upstream may be contacted: `none` (not at all),
`permit` (once, holding an admission permit) or `pass` (once, without one: only for
routes that are not generation routes). docs/hardening.md lists the same rows.

Every row also checks the invariants: the engine never received more generation
requests than admission let through, no permit is left behind, no answer of the
proxy's own is a 500."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass

import pytest

from proxy.limiter import Priority
from tests.helpers.raw_http import exchange, request
from tests.hostile.conftest import MAX_BODY, Rig

CHAT = json.dumps(
    {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
).encode()
HEAD = b"Host: proxy.test\r\nConnection: close\r\n"


def post(target: str, body: bytes = CHAT, **headers: str) -> bytes:
    return request("POST", target, body, headers)


def raw(line: bytes, extra: bytes = b"", body: bytes = b"") -> bytes:
    return line + b"\r\n" + HEAD + extra + b"\r\n" + body


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


@dataclass(frozen=True)
class Row:
    case: str
    data: bytes
    status: int
    upstream: str  # none | permit | pass
    priority: Priority | None = None  # the class it must be admitted under


CHAT_LINE = b"POST /v1/chat/completions HTTP/1.1"
ROWS = [
    # served: one canonical spelling, under a permit
    Row("plain generation request", post("/v1/chat/completions"), 200, "permit"),
    Row("percent-encoded unreserved letter", post("/v1/chat/%63ompletions"), 200, "permit"),
    Row("absolute-form target", post("http://evil.example/v1/chat/completions"), 200, "permit"),
    Row("forged Host", post("/v1/chat/completions", Host="evil.example"), 200, "permit"),
    Row(
        "two Host headers",
        raw(b"GET /v1/models HTTP/1.1", b"Host: evil.example\r\n"),
        400,
        "none",
    ),
    Row("dots and slashes in the query", post("/v1/chat/completions?x=/../&y=%2F"), 200, "permit"),
    Row(
        "chunked body",
        raw(CHAT_LINE, b"Transfer-Encoding: chunked\r\n", chunked(CHAT)),
        200,
        "permit",
    ),
    Row(
        "gzip request body",
        post("/v1/chat/completions", gzip.compress(CHAT), **{"Content-Encoding": "gzip"}),
        200,
        "permit",
    ),
    Row(
        "Expect: 100-continue",
        raw(CHAT_LINE, b"Expect: 100-continue\r\nContent-Length: %d\r\n" % len(CHAT), CHAT),
        200,
        "permit",
    ),
    Row(
        "key mapped low asks for high",
        post("/v1/chat/completions", Authorization="Bearer sk-low", **{"x-priority": "high"}),
        200,
        "permit",
        Priority.LOW,
    ),
    Row(
        "no key asks for high",
        post("/v1/chat/completions", **{"x-priority": "high"}),
        200,
        "permit",
        Priority.NORMAL,
    ),
    Row(
        "key mapped high lowers itself",
        post("/v1/chat/completions", Authorization="Bearer sk-high", **{"x-priority": "low"}),
        200,
        "permit",
        Priority.LOW,
    ),
    # ambiguous paths: 400, nothing upstream
    Row("dot segment", post("/v1/./chat/completions"), 400, "none"),
    Row("dot-dot segment", post("/v1/x/../chat/completions"), 400, "none"),
    Row("encoded dot-dot", post("/v1/x/%2e%2E/chat/completions"), 400, "none"),
    Row("leading double slash", post("//v1/chat/completions"), 400, "none"),
    Row("inner double slash", post("/v1//chat/completions"), 400, "none"),
    Row("trailing slash", post("/v1/chat/completions/"), 400, "none"),
    Row("encoded slash", post("/v1/chat%2Fcompletions"), 400, "none"),
    Row("encoded backslash", post("/v1/chat%5Ccompletions"), 400, "none"),
    Row("backslash", post("/v1\\chat/completions"), 400, "none"),
    Row("encoded newline", post("/v1/chat/completions%0A"), 400, "none"),
    Row("encoded NUL", post("/v1/chat/completions%00"), 400, "none"),
    Row("other letter case", post("/V1/Chat/Completions"), 400, "none"),
    Row("fragment", post("/v1/chat/completions#x"), 400, "none"),
    Row("malformed escape", post("/v1/chat/completions%zz"), 400, "none"),
    Row("raw non-ASCII", raw("POST /v1/chät HTTP/1.1".encode()), 400, "none"),
    # not generation routes: relayed without a permit
    Row("GET on a generation route", request("GET", "/v1/chat/completions"), 405, "pass"),
    Row("model list", request("GET", "/v1/models"), 200, "pass"),
    # HTTP framing (smuggling shapes and parser limits): 400 and close
    Row("lower-case method", raw(b"post /v1/chat/completions HTTP/1.1"), 400, "none"),
    Row(
        "Content-Length and Transfer-Encoding",
        raw(CHAT_LINE, b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        400,
        "none",
    ),
    Row(
        "duplicate Content-Length",
        raw(CHAT_LINE, b"Content-Length: 4\r\nContent-Length: 5\r\n", b"abcd"),
        400,
        "none",
    ),
    Row("negative Content-Length", raw(CHAT_LINE, b"Content-Length: -1\r\n"), 400, "none"),
    Row("obs-fold header", raw(b"GET /v1/models HTTP/1.1", b"X-A: 1\r\n  b\r\n"), 400, "none"),
    Row("bare CR in a header", raw(b"GET /v1/models HTTP/1.1", b"X-A: 1\r2\r\n"), 400, "none"),
    Row("NUL in a header", raw(b"GET /v1/models HTTP/1.1", b"X-A: 1\x002\r\n"), 400, "none"),
    Row("garbage request line", b"GARB AGE\r\n\r\n", 400, "none"),
    Row("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "none"),
    Row("unknown HTTP version", raw(b"GET /v1/models HTTP/1.2"), 400, "none"),
    Row(
        "header line over 8 KiB",
        raw(b"GET /v1/models HTTP/1.1", b"X-Big: " + b"a" * 9000 + b"\r\n"),
        400,
        "none",
    ),
    Row(
        "200 headers",
        raw(b"GET /v1/models HTTP/1.1", b"".join(b"X-%d: 1\r\n" % i for i in range(200))),
        400,
        "none",
    ),
    Row(
        "transfer coding other than chunked",
        raw(CHAT_LINE, b"Transfer-Encoding: gzip, chunked\r\n", chunked(gzip.compress(CHAT))),
        501,
        "none",
    ),
    Row(
        "broken chunked framing",
        raw(CHAT_LINE, b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n"),
        400,
        "none",
    ),
    Row(
        "body not in its Content-Encoding",
        post("/v1/chat/completions", b"not gzip", **{"Content-Encoding": "gzip"}),
        400,
        "none",
    ),
    Row("CONNECT", raw(b"CONNECT evil.example:443 HTTP/1.1"), 404, "none"),
    Row("OPTIONS *", raw(b"OPTIONS * HTTP/1.1"), 404, "none"),
    # hostile bodies: never a 500; the proxy's 400, or the upstream's own
    Row("JSON nested 100,000 deep", post("/v1/chat/completions", b"[" * 100_000), 400, "none"),
    Row(
        "10,000-digit number",
        post("/v1/completions", b'{"n": ' + b"9" * 10_000 + b"}"),
        400,
        "permit",
    ),
    Row("invalid UTF-8", post("/v1/chat/completions", b'{"model": "\xff\xfe"}'), 400, "permit"),
    Row("not JSON", post("/v1/chat/completions", b"{nope"), 400, "permit"),
    Row("body over the limit", post("/v1/chat/completions", b"x" * (MAX_BODY + 1)), 413, "none"),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.case)
async def test_hostile_input_gets_its_defined_answer(rig: Rig, row: Row) -> None:
    forwarded, admitted = rig.forwarded, rig.admitted.count
    answer = await exchange(rig.proxy.url, row.data)
    await rig.settled()
    assert answer.status == row.status, answer.body[:200]
    assert not (answer.from_proxy and answer.status == 500)
    sent, permits = rig.forwarded - forwarded, rig.admitted.count - admitted
    assert (sent, permits) == {"none": (0, 0), "permit": (1, 1), "pass": (1, 0)}[row.upstream]
    assert rig.generated <= rig.admitted.count  # nothing reached the engine around admission
    if row.priority is not None:
        assert rig.admitted.priorities[-1] is row.priority
    if answer.from_proxy:
        error = json.loads(answer.body)["error"]
        assert set(error) >= {"message", "type", "code"}
        assert "127.0.0.1" not in error["message"] and "Traceback" not in error["message"]
