import pytest

from proxy.bench.saturation import find_saturation

LEVELS = [1, 2, 4, 8, 16, 32]


def test_finds_the_first_level_after_which_throughput_stops_growing() -> None:
    throughput = [1.0, 2.0, 3.9, 7.0, 7.3, 7.4]
    latency = [0.5, 0.5, 0.55, 0.6, 1.1, 2.2]
    saturation = find_saturation(LEVELS, throughput, latency)
    assert saturation.level == 8
    assert "8" in saturation.reason


def test_not_saturated_while_throughput_keeps_growing() -> None:
    throughput = [1.0, 2.0, 3.9, 7.0, 12.0, 20.0]
    latency = [0.5, 0.5, 0.55, 0.6, 0.7, 0.9]
    assert find_saturation(LEVELS, throughput, latency).level is None


def test_flat_throughput_without_rising_latency_is_not_saturation() -> None:
    throughput = [1.0, 1.05, 2.0, 4.0, 8.0, 16.0]
    latency = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert find_saturation(LEVELS, throughput, latency).level is None


def test_falling_throughput_with_rising_latency_is_saturation() -> None:
    throughput = [1.0, 2.0, 1.5, 1.4, 1.3, 1.2]
    latency = [0.5, 0.5, 1.5, 3.0, 6.0, 9.0]
    assert find_saturation(LEVELS, throughput, latency).level == 2


def test_gain_threshold_is_configurable() -> None:
    throughput = [1.0, 1.8, 3.0, 4.0, 5.0, 6.0]  # +80%, +67%, +33%, then +25%: knee at 8
    latency = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert find_saturation(LEVELS, throughput, latency, min_gain=0.3).level == 8


def test_levels_without_latency_are_skipped() -> None:
    throughput = [0.0, 2.0, 2.0, 2.0]
    latency = [None, 0.5, 0.9, 1.5]
    assert find_saturation([1, 2, 4, 8], throughput, latency).level == 2


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        find_saturation([1, 2], [1.0], [0.5, 0.6])
