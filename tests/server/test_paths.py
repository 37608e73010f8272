"""One canonical path per request: ambiguous spellings are refused, unreserved escapes
decoded, the query kept byte for byte, and admission decided on the canonical path."""

from __future__ import annotations

import pytest

from proxy.errors import AmbiguousPath
from proxy.server.inbound import is_admitted
from proxy.server.paths import Target, canonical_path, parse_target
from proxy.server.state import ADMITTED_PATHS


@pytest.mark.parametrize(
    "path",
    [
        "/v1/./chat/completions",
        "/v1/x/../chat/completions",
        "/v1/chat/completions/.",
        "/v1/%2e/chat/completions",
        "/v1/%2E%2e/chat/completions",
        "//v1/chat/completions",
        "/v1//chat/completions",
        "/v1/chat/completions/",
        "/v1/chat%2Fcompletions",
        "/v1/chat%2fcompletions",
        "/v1/chat%5Ccompletions",
        "/v1\\chat/completions",
        "/v1/chat/completions%00",
        "/v1/chat/completions%0A",
        "/v1/chat/completions%0d",
        "/v1/chat/completions%7F",
        "/v1/chat/compl\x00etions",
        "/v1/chat/completions\t",
        "/v1/chat/compl etions",
        "/v1/chat/complétions",
        "/v1/chat/completions%",
        "/v1/chat/completions%4",
        "/v1/chat/completions%zz",
    ],
)
def test_ambiguous_paths_are_refused(path: str) -> None:
    with pytest.raises(AmbiguousPath):
        canonical_path(path)


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/chat/%63ompletions", "/v1/chat/completions"),
        ("/%76%31/%43hat", "/v1/Chat"),
        ("/v1/%7e%2D%5f", "/v1/~-_"),
        ("/v1/a%20b", "/v1/a%20b"),
        ("/v1/a%2cb", "/v1/a%2Cb"),
        ("/v1/models;x=1", "/v1/models;x=1"),
        ("/", "/"),
    ],
)
def test_unreserved_escapes_are_decoded_and_others_kept(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical


def test_the_query_is_kept_byte_for_byte() -> None:
    target = parse_target("/v1/%63hat?a=%2F..%2f&b=//&c")
    assert target == Target("/v1/chat", "a=%2F..%2f&b=//&c")
    assert str(target.upstream_url("http://up:8000")) == "http://up:8000/v1/chat?a=%2F..%2f&b=//&c"


def test_no_query_and_an_empty_query_differ() -> None:
    assert parse_target("/v1/models").query is None
    assert parse_target("/v1/models?").query == ""


def test_the_upstream_url_is_not_normalised_again() -> None:
    url = Target("/v1/a%20b", None).upstream_url("http://up:8000")
    assert url.raw_path == "/v1/a%20b"


def test_absolute_form_keeps_only_path_and_query() -> None:
    assert parse_target("http://evil.example:9/v1/models?x=1") == Target("/v1/models", "x=1")
    assert parse_target("http://evil.example") == Target("/", None)
    with pytest.raises(AmbiguousPath):
        parse_target("http://evil.example/v1/./chat/completions")


@pytest.mark.parametrize("target", ["*", "evil.example:443", "/v1/models#top", "v1/models"])
def test_other_target_forms_are_refused(target: str) -> None:
    with pytest.raises(AmbiguousPath):
        parse_target(target)


def test_admission_is_decided_on_the_canonical_path() -> None:
    for path in ADMITTED_PATHS:
        assert is_admitted("POST", canonical_path(path), ADMITTED_PATHS)
    assert is_admitted("POST", canonical_path("/v1/chat/%63ompletions"), ADMITTED_PATHS)
    assert not is_admitted("GET", "/v1/chat/completions", ADMITTED_PATHS)
    assert not is_admitted("POST", "/v1/models", ADMITTED_PATHS)


def test_a_method_is_compared_as_the_client_library_sends_it() -> None:
    assert is_admitted("post", "/v1/chat/completions", ADMITTED_PATHS)


@pytest.mark.parametrize("path", ["/V1/Chat/Completions", "/v1/CHAT/completions", "/V1/embeddings"])
def test_another_letter_case_of_an_admitted_route_is_refused(path: str) -> None:
    with pytest.raises(AmbiguousPath):
        is_admitted("POST", path, ADMITTED_PATHS)
