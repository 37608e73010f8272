"""`sla-proxy bench-suite` (what `make bench` runs): the proxy's cost, always as a
ratio or difference against a baseline measured in the same run, because the 2-core
machines are shared and absolute figures drift by more than the proxy costs.

1. Overhead: the simulator and the proxy each in their own process, as deployed; a
   closed-loop sweep sends the same workload straight to the simulator and through
   the proxy, interleaved per level by `run_sweep`. The proxy runs the fixed
   algorithm with a limit far above the load and no queue, so admission never
   binds and only forwarding costs show. Several whole sweeps ("rounds"), each
   flipping which endpoint goes first, are reduced to per-level medians, and the
   other tenants' CPU use is recorded per level so a contended run can be told.
   Non-streamed probes (one chat answer, one `GET /v1/models`) alternate likewise.
2. CPU and memory from /proc: CPU seconds per 1,000 requests and RSS of the proxy,
   next to the simulator and this load generator serving the same requests.
3. Hot-path micro-benchmarks: each against the plainest code doing the same job,
   interleaved per repeat; the median of the per-repeat ratios is reported.

4. Reference sections (`--sections`; reference.md and reference.json): sla-proxy
   against nginx as a proxy and a bare aiohttp passthrough under wrk (issue 12's
   table), paced streams and the delay the proxy adds to each event, and a normal
   request's latency among thousands of slow client sockets, and the memory of a full
   queue (issue 10's goals).

Modules: `config` (what a run measures), `processes` (subprocesses), `procfs`
(/proc readings), `probes` and `overhead` (direct against proxied), `load` (the load
phase in order), `timing` and `micro` (micro-benchmarks), `result`,
`markdown_report`, `figure` and `output` (the report), `cli` (the command line).
Reference sections: `refconfig` and `refcli` (what they measure), `tools` (nginx and
wrk), `payloads`, `nginx`, `wrk`, `passthrough` (the bare baseline), `servers`,
`meter` (CPU per window), `reference` (the table), `paced` and `paced_client` and
`streams` (paced streams), `sockets`, `clients` and `queued` (issue 10), `refrun`,
`refreport` and `refgoals` (the run and its report).
"""

from proxy.bench.suite.cli import _config as _config
from proxy.bench.suite.cli import _notes as _notes
from proxy.bench.suite.cli import configure, run, run_suite
from proxy.bench.suite.config import SuiteConfig
from proxy.bench.suite.figure import write_png
from proxy.bench.suite.load import LoadResult, measure
from proxy.bench.suite.markdown_report import markdown
from proxy.bench.suite.micro import (
    bench_limiter,
    bench_sse,
    bench_window,
    micro_benchmarks,
    sse_stream,
)
from proxy.bench.suite.output import to_dict, write_outputs
from proxy.bench.suite.overhead import OverheadRow, median_rows, overhead_rows
from proxy.bench.suite.probes import ProbeResult, probe_calls, run_probe, scrape_overhead
from proxy.bench.suite.processes import (
    PROJECT_ROOT,
    ROLES,
    ServiceError,
    Targets,
    service,
    services,
)
from proxy.bench.suite.procfs import ProcessUsage, ProcSample, machine_busy_seconds, read_proc
from proxy.bench.suite.result import SuiteResult, machine_info
from proxy.bench.suite.timing import MicroResult, compare

__all__ = [
    "PROJECT_ROOT",
    "ROLES",
    "LoadResult",
    "MicroResult",
    "OverheadRow",
    "ProbeResult",
    "ProcSample",
    "ProcessUsage",
    "ServiceError",
    "SuiteConfig",
    "SuiteResult",
    "Targets",
    "bench_limiter",
    "bench_sse",
    "bench_window",
    "compare",
    "configure",
    "machine_busy_seconds",
    "machine_info",
    "markdown",
    "measure",
    "median_rows",
    "micro_benchmarks",
    "overhead_rows",
    "probe_calls",
    "read_proc",
    "run",
    "run_probe",
    "run_suite",
    "scrape_overhead",
    "service",
    "services",
    "sse_stream",
    "to_dict",
    "write_outputs",
    "write_png",
]
