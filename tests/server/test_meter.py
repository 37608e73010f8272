"""The request meter: what a relay saw becomes the request's Sample."""

from __future__ import annotations

import pytest

from proxy.core.outcome import Outcome, UpstreamErrorKind
from proxy.server.meter import RequestMeter


def test_a_stream_with_usage_times_ttft_and_counts_tokens_from_usage() -> None:
    meter = RequestMeter(10.0, streamed=True, epoch=3)
    meter.answered(200)
    meter.first_content(10.2)
    meter.first_content(10.5)  # only the first counts
    meter.streamed_events(4, {"completion_tokens": 11, "prompt_tokens": 7})
    sample = meter.sample(11.2)
    assert (sample.outcome, sample.epoch, sample.output_tokens, sample.prompt_tokens) == (
        Outcome.SUCCESS,
        3,
        11,
        7,
    )
    assert sample.ttft == pytest.approx(0.2)
    assert sample.tpot == pytest.approx(0.1)


def test_without_usage_a_stream_counts_one_token_per_content_event() -> None:
    meter = RequestMeter(0.0, streamed=True, epoch=0)
    meter.answered(200)
    meter.first_content(0.1)
    meter.streamed_events(5, None)
    assert meter.sample(0.5).output_tokens == 5


def test_a_whole_answer_has_no_ttft() -> None:
    meter = RequestMeter(0.0, streamed=False, epoch=0)
    meter.answered(200)
    meter.first_content(0.3)
    meter.usage = {"completion_tokens": 9}
    sample = meter.sample(1.0)
    assert sample.ttft is None and sample.signal("ttft") is None
    assert (sample.output_tokens, sample.e2e) == (9, 1.0)


def test_an_upstream_failure_is_overload_with_its_kind() -> None:
    meter = RequestMeter(0.0, streamed=True, epoch=0)
    meter.answered(200)
    meter.failed(UpstreamErrorKind.STREAM_CUT)
    meter.failed(UpstreamErrorKind.TIMEOUT)  # the first failure is the one that counts
    sample = meter.sample(1.0)
    assert (sample.outcome, sample.error) == (Outcome.OVERLOAD, UpstreamErrorKind.STREAM_CUT)


@pytest.mark.parametrize(
    ("status", "kind"), [(429, UpstreamErrorKind.STATUS_429), (503, UpstreamErrorKind.STATUS_5XX)]
)
def test_an_overloaded_status_is_overload(status: int, kind: UpstreamErrorKind) -> None:
    meter = RequestMeter(0.0, streamed=False, epoch=0)
    meter.answered(status)
    assert (meter.sample(0.1).outcome, meter.sample(0.1).error) == (Outcome.OVERLOAD, kind)


def test_a_client_that_left_is_ignored_and_says_when() -> None:
    meter = RequestMeter(0.0, streamed=True, epoch=0)
    meter.answered(200)
    meter.first_content(0.1)
    meter.left()
    sample = meter.sample(0.4)
    assert (sample.outcome, sample.client_left, sample.ttft) == (Outcome.IGNORED, True, 0.1)


RESPONSES_USAGE = {
    "input_tokens": 7,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 11,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 18,
}


def test_a_responses_stream_counts_tokens_from_its_usage_and_times_tpot() -> None:
    meter = RequestMeter(10.0, streamed=True, epoch=0)
    meter.answered(200)
    meter.first_content(10.2)
    meter.streamed_events(4, RESPONSES_USAGE)
    sample = meter.sample(11.2)
    assert (sample.output_tokens, sample.prompt_tokens) == (11, 7)
    assert sample.tpot == pytest.approx(0.1)


def test_a_whole_responses_answer_counts_its_output_tokens() -> None:
    meter = RequestMeter(0.0, streamed=False, epoch=0)
    meter.answered(200)
    meter.usage = RESPONSES_USAGE
    sample = meter.sample(1.0)
    assert (sample.output_tokens, sample.prompt_tokens, sample.ttft) == (11, 7, None)
