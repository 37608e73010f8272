import pytest

from proxy.load.client import RequestResult
from proxy.load.stats import Slo, is_good, summarize


def ok(e2e: float, ttft: float, tokens: int, itl: tuple[float, ...] = ()) -> RequestResult:
    return RequestResult(True, 200, None, 0.0, e2e, ttft, itl, tokens)


def failed(status: int | None, error: str) -> RequestResult:
    return RequestResult(False, status, error, 0.0, 0.1)


def test_slo_parses_seconds_and_milliseconds() -> None:
    slo = Slo.parse("ttft=200ms,tpot=0.05,e2el=5s")
    assert slo == Slo(ttft=0.2, tpot=0.05, e2e=5.0)


@pytest.mark.parametrize("spec", ["ttft", "ttft=fast", "speed=1", "tpot=-1", "e2e=0"])
def test_slo_rejects_nonsense(spec: str) -> None:
    with pytest.raises(ValueError):
        Slo.parse(spec)


def test_tpot_excludes_the_first_token() -> None:
    assert ok(e2e=1.1, ttft=0.1, tokens=11).tpot == pytest.approx(0.1)


def test_good_needs_every_slo_and_counts_the_boundary_as_met() -> None:
    slo = Slo(ttft=0.5, tpot=0.1)
    assert is_good(ok(e2e=1.5, ttft=0.5, tokens=11), slo)  # ttft == limit, tpot == limit
    assert not is_good(ok(e2e=1.5, ttft=0.51, tokens=11), slo)  # ttft over
    assert not is_good(ok(e2e=1.6, ttft=0.4, tokens=11), slo)  # tpot 0.12 over


def test_single_token_request_has_zero_tpot_for_goodput_as_in_vllm() -> None:
    assert is_good(ok(e2e=9.0, ttft=0.1, tokens=1), Slo(tpot=0.001))


def test_failed_request_is_never_good() -> None:
    assert not is_good(failed(500, "http"), Slo(e2e=100))


def test_goodput_counts_hand_made_samples_over_the_level_duration() -> None:
    samples = [
        ok(e2e=1.0, ttft=0.1, tokens=10),  # good
        ok(e2e=1.0, ttft=0.3, tokens=10),  # ttft over 0.2
        ok(e2e=3.0, ttft=0.1, tokens=10),  # e2e over 2
        ok(e2e=2.0, ttft=0.2, tokens=10),  # good: both at the limit
        failed(503, "http"),
    ]
    stats = summarize("a", "concurrency", 4, samples, 2.0, Slo(ttft=0.2, e2e=2.0))
    assert stats.good == 2
    assert stats.goodput == pytest.approx(1.0)
    assert stats.req_per_s == pytest.approx(2.0)
    assert stats.output_tok_per_s == pytest.approx(20.0)


def test_goodput_is_none_without_an_slo() -> None:
    stats = summarize("a", "concurrency", 1, [ok(1.0, 0.1, 5)], 1.0, Slo())
    assert stats.goodput is None


def test_failures_are_counted_by_status_then_error_kind() -> None:
    samples = [failed(500, "http"), failed(500, "http"), failed(429, "http")]
    samples += [failed(None, "connect"), failed(200, "stream_cut"), ok(1.0, 0.1, 3)]
    stats = summarize("a", "concurrency", 1, samples, 1.0, Slo())
    assert stats.failures == {"429": 1, "500": 2, "connect": 1, "stream_cut": 1}
    assert (stats.ok, stats.failed, stats.requests) == (1, 5, 6)


def test_latency_distributions_cover_successful_requests_only() -> None:
    samples = [ok(1.0, 0.1, 3, itl=(0.2, 0.3)), ok(3.0, 0.3, 3, itl=(0.4,)), failed(500, "http")]
    stats = summarize("a", "concurrency", 1, samples, 1.0, Slo())
    assert stats.e2e is not None and stats.e2e.p50 == 1.0  # nearest rank, not interpolated
    assert stats.e2e.p90 == 3.0
    assert stats.itl is not None and stats.itl.mean == pytest.approx(0.3)
    assert stats.ttft is not None and stats.ttft.p50 <= stats.ttft.p90 <= stats.ttft.p99
