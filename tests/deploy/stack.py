"""The whole observability path on loopback: a pool of two simulated engines (one
simulator process) -> the proxy (one `--upstream` per engine) -> Prometheus (the real
rules) -> Alertmanager (the real routing) -> a webhook, plus a bounded load to drive the
proxy into overload, and an episode where one member is ejected and re-admitted. Shared
by the alerting end-to-end test and the dashboard test."""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.deploy.paths import REPO
from tests.deploy.services import (
    Process,
    Webhook,
    free_port,
    poll,
    prom_api,
    start_alertmanager,
    start_prometheus,
)

MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # the simulator's default profile serves this
# Demand is made to exceed capacity whatever the simulator's speed: the limit is capped
# well below the load's concurrency and the queue is small, so shedding is sustained and
# the proxy's capacity alert fires within seconds. The SLA is tight enough that some
# requests miss it, so the SLA series have both results.
PROXY_FLAGS = (
    "--max-limit=8",
    "--sla-ttft=0.05",
    "--sla-tpot=0.01",
    "--sla-e2e=2",
    "--queue-size=2",
    "--queue-timeout=1",
    "--alert-for=2",
    # Shed clients back off as retry-after-ms says, which caps the shed ratio a
    # closed loop can produce near 10%: a lower threshold keeps the test about the
    # alert's path, not about where that ratio lands on a given machine.
    "--alert-shed-ratio=0.02",
    "--alert-resolve-after=5",
    "--window-min-samples=5",
    "--control-interval=0.5",
)


@dataclass
class Load:
    """Closed-loop streaming clients on a background thread, bounded in time and count.
    A shed client pauses as its retry-after-ms says (capped), like a polite SDK."""

    url: str
    concurrency: int = 12
    max_seconds: float = 60.0
    max_requests: int = 20_000
    statuses: collections.Counter[int | str] = field(default_factory=collections.Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    async def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Tell me about admission control."}],
            "max_tokens": 32,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

        def going() -> bool:
            return (
                not self._stop.is_set()
                and time.monotonic() < deadline
                and self.sent < self.max_requests
            )

        async def client(session: aiohttp.ClientSession) -> None:
            while going():
                pause = 0.0
                try:
                    async with session.post(f"{self.url}/v1/chat/completions", json=body) as r:
                        await r.read()
                        self.statuses[r.status] += 1
                        if r.status == 429:
                            pause = min(0.2, int(r.headers.get("retry-after-ms", "100")) / 1000)
                except aiohttp.ClientError as exc:
                    self.statuses[type(exc).__name__] += 1
                    pause = 0.1
                if pause:
                    await asyncio.sleep(pause)  # client pacing, not synchronisation

        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(client(session) for _ in range(self.concurrency)))


@dataclass(frozen=True)
class Episode:
    """What one overload produced: Prometheus' firing capacity alert at the webhook."""

    prometheus_firing: tuple[str, dict[str, Any]]
    load_statuses: collections.Counter[int | str]


MEMBERS = 2  # simulated engines behind the proxy, given as bare URLs (named host:port)


@dataclass
class Stack:
    work: Path
    webhook: Webhook
    processes: list[Process] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)  # upstream label -> engine URL
    started_at: float = 0.0
    loaded: bool = False
    episode: Episode | None = None
    member_out: bool = False

    @property
    def proxy_admin(self) -> str:
        return self.urls["admin"]

    @property
    def prometheus(self) -> str:
        return self.urls["prometheus"]

    def load(self, concurrency: int = 12, max_seconds: float = 60.0) -> Load:
        self.loaded = True
        return Load(self.urls["proxy"], concurrency=concurrency, max_seconds=max_seconds)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.webhook.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self.processes)


def start_stack(work: Path) -> Stack:
    webhook = Webhook()
    webhook.start()
    stack = Stack(work, webhook, started_at=time.time())
    try:
        alertmanager, stack.urls["alertmanager"] = start_alertmanager(work, webhook.url)
        stack.processes.append(alertmanager)
        python = [sys.executable, "-m", "proxy"]
        sim_ports = [free_port() for _ in range(MEMBERS)]
        port, admin_port = free_port(), free_port()
        engines = [f"--engine=h100-llama3-8b:{sim_port}" for sim_port in sim_ports]
        sim = Process.start("sim", [*python, "sim", *engines, "--speed=20"], work, cwd=REPO)
        stack.processes.append(sim)
        for sim_port in sim_ports:
            url = stack.members[f"127.0.0.1:{sim_port}"] = f"http://127.0.0.1:{sim_port}"
            sim.wait_http_ok(f"{url}/health")
        proxy = Process.start(
            "proxy",
            [
                *python,
                "serve",
                *(f"--upstream={url}" for url in stack.members.values()),
                f"--port={port}",
                f"--admin-port={admin_port}",
                f"--alertmanager-url={stack.urls['alertmanager']}",
                *PROXY_FLAGS,
            ],
            work,
            cwd=REPO,
        )
        stack.processes.append(proxy)
        stack.urls["proxy"] = f"http://127.0.0.1:{port}"
        stack.urls["admin"] = f"http://127.0.0.1:{admin_port}"
        proxy.wait_http_ok(f"{stack.urls['admin']}/healthz")
        prometheus, stack.urls["prometheus"] = start_prometheus(
            work,
            stack.urls["alertmanager"],
            {
                "sla-proxy": [f"127.0.0.1:{admin_port}"],
                "vllm": [f"127.0.0.1:{sim_port}" for sim_port in sim_ports],
            },
        )
        stack.processes.append(prometheus)
    except BaseException:
        stack.stop()
        raise
    return stack


def overload_episode(stack: Stack) -> Episode:
    """Once per stack: overload until Prometheus' capacity alert reaches the webhook
    (bounded), then stop the load. Later callers get the same episode."""
    if stack.episode is not None:
        return stack.episode
    load = stack.load(concurrency=24, max_seconds=80)
    load.start()
    try:
        firing = stack.webhook.wait_for_alert(
            lambda path, alert: (
                alert["labels"].get("job") == "sla-proxy"
                and alert["labels"]["alertname"] == "SLAProxyCapacityExceeded"
                and alert["status"] == "firing"
            ),
            timeout=80,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nload: {load.statuses}\n{stack.logs()}") from None
    finally:
        load.stop()
    stack.episode = Episode(firing, load.statuses)
    return stack.episode


def _set_faults(sim_url: str, faults: dict[str, object] | None) -> None:
    """POST /sim/faults (or DELETE them all) on one engine of the simulator."""
    request = urllib.request.Request(
        f"{sim_url}/sim/faults",
        data=None if faults is None else json.dumps(faults).encode(),
        method="DELETE" if faults is None else "POST",
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


def member_out_episode(stack: Stack) -> None:
    """Once per stack: the last member accepts connections and closes them without an answer
    while a light load runs, until Prometheus has seen the proxy eject it; then it heals
    and is seen back in rotation (bounded). The other member serves throughout."""
    if stack.member_out:
        return
    stack.member_out = True
    member = list(stack.members)[-1]

    def scalar(query: str) -> float | None:
        result = prom_api(stack.prometheus, "query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    load = stack.load(concurrency=4, max_seconds=60)
    _set_faults(stack.members[member], {"refuse": True})
    load.start()
    try:
        poll(
            lambda: (
                (scalar(f'sum(proxy_upstream_ejections_total{{upstream="{member}"}})') or 0) > 0
                and scalar(f'proxy_upstream_up{{upstream="{member}"}}') == 0
            ),
            40,
            f"Prometheus to see {member} ejected\nload: {load.statuses}\n{stack.logs()}",
        )
    finally:
        _set_faults(stack.members[member], None)
    try:
        poll(
            lambda: scalar(f'proxy_upstream_up{{upstream="{member}"}}') == 1,
            40,
            f"Prometheus to see {member} back in rotation\n{stack.logs()}",
        )
    finally:
        load.stop()
