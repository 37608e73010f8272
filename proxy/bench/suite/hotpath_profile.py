"""Where sla-proxy's hot path spends its CPU: py-spy samples the proxy process (its
own process, pinned, in front of nginx's fixed answer) while wrk drives it, then the
samples are summarised by self and total time per function. Needs py-spy in the
virtualenv (`.venv/bin/pip install py-spy`) and nginx and wrk (as `make bench`).

    python -m proxy.bench.suite.hotpath_profile --kind sse --connections 64 --seconds 20

`--target bare` profiles the bare passthrough the same way: the floor on this stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

from proxy.bench.suite.nginx import running_nginx
from proxy.bench.suite.paced_client import run_streams
from proxy.bench.suite.payloads import request_body
from proxy.bench.suite.processes import pinned
from proxy.bench.suite.servers import Server, bare, paced, sla_options, sla_proxy
from proxy.bench.suite.tools import cpus_for_pinning, ensure
from proxy.bench.suite.wrk import run_wrk, write_script


def _where(frame: str) -> str:
    """`f (aiohttp/web_protocol.py:438)` -> `aiohttp`; the proxy's own code by module."""
    path = frame.rpartition("(")[2].split(":")[0]
    if path.startswith("proxy/"):
        return path
    return path.split("/")[0] if "/" in path else path


def summarise(raw: str, top: int = 25) -> str:
    """py-spy's raw (collapsed) stacks -> tables: self and total share per frame, self
    share per package (the proxy's modules apart), and the proxy's own functions."""
    self_time: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return "no samples\n"

    def pct(count: int) -> str:
        return f"{100 * count / samples:.1f}"

    lines = [f"{samples} samples", "", "| self % | total % | function |", "|---|---|---|"]
    for frame, count in self_time.most_common(top):
        lines.append(f"| {pct(count)} | {pct(total[frame])} | `{frame}` |")
    places: Counter[str] = Counter()
    for frame, count in self_time.items():
        places[_where(frame)] += count
    lines += ["", "| self % | where |", "|---|---|"]
    lines += [f"| {pct(count)} | `{where}` |" for where, count in places.most_common(top)]
    entry = ("proxy/cli.py", "proxy/__main__.py", "proxy/server/cli.py")
    own = [(f, c) for f, c in total.most_common() if _where(f).startswith("proxy/")]
    own = [(f, c) for f, c in own if _where(f) not in entry]
    lines += ["", "| total % | self % | the proxy's own functions |", "|---|---|---|"]
    lines += [f"| {pct(c)} | {pct(self_time[f])} | `{f}` |" for f, c in own[:top]]
    return "\n".join(lines) + "\n"


async def profile(
    kind: str, connections: int, seconds: int, rate: int, out: Path, target: str = "sla-proxy"
) -> Path:
    """`kind` json or sse: wrk against nginx's fixed answer through `target`; paced:
    `connections` paced streams (one event per token every 20 ms) through it."""
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("py-spy not found; install it: .venv/bin/pip install py-spy")
    binaries = ensure()
    cpus = cpus_for_pinning()
    os.makedirs(out, exist_ok=True)
    raw = out / f"profile-{target}-{kind}-c{connections}.txt"
    argv = [pyspy, "record", "--duration", str(seconds), "--rate", str(rate)]
    argv += ["--format", "raw", "--function"]
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as folder:
        os.chmod(folder, 0o755)
        async with AsyncExitStack() as stack:
            if kind == "paced":
                upstream = (await stack.enter_async_context(paced("paced", folder, cpus[1]))).url
            else:
                nginx_dir = Path(folder, "nginx")
                nginx = await stack.enter_async_context(
                    running_nginx(binaries["nginx"], nginx_dir, cpus[0])
                )
                upstream = nginx.upstream[kind]
            proxy = await stack.enter_async_context(_target(target, upstream, folder, cpus[0]))
            load = _load(kind, binaries["wrk"], Path(folder), proxy.url, connections, cpus[1])
            await load(1)  # warm: imports, pools
            sampler = await asyncio.create_subprocess_exec(
                *pinned([*argv, "--pid", str(proxy.pid), "-o", str(raw)], cpus[1]),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            done = await load(seconds + 2)
            await sampler.wait()
    summary = raw.with_suffix(".md")
    header = f"# {target}, {kind} x{connections}: {done} under py-spy\n\n"
    summary.write_text(header + f"`{' '.join(argv)} --pid PID`\n\n" + summarise(raw.read_text()))
    return summary


def _load(
    kind: str, wrk: str, folder: Path, url: str, connections: int, cpu: int | None
) -> Callable[[int], Awaitable[str]]:
    script = write_script(folder, kind, request_body(stream=kind == "sse"))

    async def run(seconds: int) -> str:
        if kind == "paced":
            port = int(url.rsplit(":", 1)[1])
            tally = await run_streams(port, connections, 64, 0.02, seconds, 0.0)
            return f"{tally.events / seconds:.0f} events/s"
        result = await run_wrk(wrk, url, script, connections, seconds, cpu)
        return f"{result.rate:.0f} req/s"

    return run


def _target(
    name: str, upstream: str, logs: str, cpu: int | None
) -> AbstractAsyncContextManager[Server]:
    if name == "bare":
        return bare("bare", upstream, logs, cpu)
    return sla_proxy("sla-proxy", upstream, sla_options(256), logs, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m proxy.bench.suite.hotpath_profile")
    parser.add_argument("--kind", choices=("json", "sse", "paced"), default="json")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200, help="samples per second (200)")
    parser.add_argument("--target", choices=("sla-proxy", "bare"), default="sla-proxy")
    parser.add_argument("--out", type=Path, default=Path("out/profile"))
    args = parser.parse_args()
    load_cpu = cpus_for_pinning()[1]
    if load_cpu is not None:  # the paced client runs here: beside wrk, away from the proxy
        os.sched_setaffinity(0, {load_cpu})
    path = asyncio.run(
        profile(args.kind, args.connections, args.seconds, args.rate, args.out, args.target)
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
