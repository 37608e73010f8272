"""A listener that keeps every sample the proxy reports, for comparing what the proxy
measured with what the test's client saw."""

from __future__ import annotations

from proxy.admission import Listener
from proxy.core.outcome import Sample
from proxy.core.sla import Verdict
from proxy.server.app import RunningProxy


class SampleRecorder(Listener):
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def finished(self, sample: Sample, verdict: Verdict | None) -> None:
        self.samples.append(sample)


def record_samples(proxy: RunningProxy) -> SampleRecorder:
    recorder = SampleRecorder()
    proxy.state.admission.subscribe(recorder)
    return recorder
