import csv
import json
from pathlib import Path

import pytest

from proxy.bench import plot, report
from proxy.bench.saturation import find_saturation
from proxy.bench.sweep import Endpoint, SweepConfig, SweepResult
from proxy.load.client import RequestResult
from proxy.load.stats import Slo, summarize


def synthetic(compare: bool = False) -> SweepResult:
    endpoints = (Endpoint("direct", "http://a"),) + ((Endpoint("proxy", "http://b"),) * compare)
    cfg = SweepConfig(endpoints=endpoints, levels=(1, 2, 4), slo=Slo(ttft=0.2))
    levels = []
    for endpoint in endpoints:
        for level, rate in ((1, 1.0), (2, 1.9), (4, 2.0)):
            samples = [
                RequestResult(True, 200, None, 0.0, level * 0.5, 0.05 * level, (0.01,), 8)
                for _ in range(4)
            ] + [RequestResult(False, 503, "http", 0.0, 0.01)]
            levels.append(
                summarize(endpoint.name, "concurrency", level, samples, 4 / rate, cfg.slo)
            )
    saturation = {
        e.name: find_saturation([1, 2, 4], [1.0, 1.9, 2.0], [0.5, 1.0, 2.0]) for e in endpoints
    }
    models = {e.name: "m" for e in endpoints}
    return SweepResult(cfg, models, tuple(levels), saturation, 3.0, False)


def test_table_shows_levels_failures_goodput_and_saturation() -> None:
    text = report.table(synthetic())
    assert "req/s" in text and "goodput" in text
    assert "1 (503:1)" in text
    assert "saturates at 2" in text
    assert "ttft<=200ms" in text


def test_table_reports_the_ratio_when_comparing() -> None:
    text = report.table(synthetic(compare=True))
    assert "proxy/direct at 4: req_per_s x1.00" in text


def test_json_holds_every_level_and_the_saturation_point(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    report.write_json(synthetic(compare=True), path)
    data = json.loads(path.read_text())
    assert len(data["results"]) == 6
    assert data["saturation"]["direct"]["level"] == 2
    assert data["results"][0]["failures"] == {"503": 1}
    assert data["results"][0]["e2e"]["p90"] == pytest.approx(0.5)
    assert len(data["ratios"]) == 3


def test_csv_has_one_row_per_level_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    report.write_csv(synthetic(), path)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert [float(r["level"]) for r in rows] == [1, 2, 4]
    assert rows[2]["failures"] == "503:1"
    assert float(rows[2]["ttft_p50"]) == pytest.approx(0.2)
    assert float(rows[0]["goodput"]) == pytest.approx(1.0)


def test_plot_writes_a_png_with_both_endpoints(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    assert plot.write_png(synthetic(compare=True), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
