"""DNS discovery: what one look-up changes."""

from __future__ import annotations

from proxy.core.resolve import Change, diff, is_address, member_name, member_url


def test_new_addresses_join_in_resolver_order_and_gone_ones_drain() -> None:
    change = diff(["10.0.0.1", "10.0.0.2"], [], ["10.0.0.3", "10.0.0.1", "10.0.0.3"])
    assert change == Change(added=("10.0.0.3",), drained=("10.0.0.2",), revived=())


def test_a_draining_address_that_comes_back_is_revived_not_added() -> None:
    change = diff(["10.0.0.1"], ["10.0.0.2"], ["10.0.0.1", "10.0.0.2"])
    assert change == Change(added=(), drained=(), revived=("10.0.0.2",))


def test_a_failed_or_empty_look_up_changes_nothing() -> None:
    assert diff(["10.0.0.1"], [], None) == Change((), (), ())
    assert diff(["10.0.0.1"], [], []) == Change((), (), ())


def test_names_and_urls_bracket_ipv6() -> None:
    assert member_name("vllm", "10.0.0.7", 8000) == "vllm@10.0.0.7:8000"
    assert member_name("vllm", "fd00::7", 8000) == "vllm@[fd00::7]:8000"
    assert member_url("http", "fd00::7", 8000, "/v") == "http://[fd00::7]:8000/v"


def test_ip_literals_need_no_look_up() -> None:
    assert is_address("127.0.0.1") and is_address("[::1]") and is_address("::1")
    assert not is_address("vllm.default.svc")
