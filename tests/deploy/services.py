"""Real processes on loopback for the deployment tests: a process handle, a webhook
receiver Alertmanager notifies, and Alertmanager / Prometheus configured from the
deploy/ files. Every wait is bounded; processes are ended by their own PID."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.deploy.paths import ALERTMANAGER_CONFIG, RULES
from tests.helpers.tools import require

POLL = 0.1  # seconds between two looks while polling against a deadline


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy answer of `check` before the deadline, else AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        threading.Event().wait(POLL)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, args: Sequence[str], log_dir: Path, **kwargs: Any) -> Process:
        log = log_dir / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                list(args),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **kwargs,
            )
        return cls(name, popen, log)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_http_ok(self, url: str, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.tail()}")
            return http_get(url, timeout=2)[0] == 200

        poll(ready, timeout, f"{self.name} at {url}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: an aiohttp server on its own thread's loop, so
    synchronous and asynchronous tests can both wait on it (with a deadline)."""

    port: int = 0
    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._cond:
            self.notifications.append((request.path, body))
            self._cond.notify_all()
        return web.Response(text="ok")

    def start(self) -> None:
        started = threading.Event()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/{tail:.*}", self._handle)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="webhook", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise AssertionError("webhook receiver did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) for every alert of every notification so far."""
        with self._cond:
            return [(path, alert) for path, body in self.notifications for alert in body["alerts"]]

    def wait_for_alert(
        self, match: Callable[[str, dict[str, Any]], bool], timeout: float
    ) -> tuple[str, dict[str, Any]]:
        found: list[tuple[str, dict[str, Any]]] = []

        def seen() -> bool:
            found[:] = [(path, alert) for path, alert in self.alerts() if match(path, alert)]
            return bool(found)

        with self._cond:
            if not self._cond.wait_for(seen, timeout):
                raise AssertionError(
                    f"no matching alert within {timeout}s; got {self.alerts()!r:.2000}"
                )
        return found[0]


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with its receivers pointed at the test
    webhook (path = receiver name) and notification delays cut to test scale."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook_url}/{receiver['name']}"
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        route.update(group_wait="0s", group_interval="1s", repeat_interval="1h")
    return config


def start_alertmanager(work: Path, webhook_url: str) -> tuple[Process, str]:
    binary = require("prometheus-alertmanager", "alertmanager")
    port = free_port()
    config = work / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(webhook_url)))
    (work / "am-data").mkdir(exist_ok=True)
    process = Process.start(
        "alertmanager",
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={work / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        work,
    )
    url = f"http://127.0.0.1:{port}"
    process.wait_http_ok(f"{url}/-/ready")
    return process, url


def start_prometheus(
    work: Path, alertmanager: str, targets: dict[str, list[str]]
) -> tuple[Process, str]:
    """Scrapes and evaluates every second, with the real rules file unchanged."""
    binary = require("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [urllib.parse.urlsplit(alertmanager).netloc]}]}
            ]
        },
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
            for job, addresses in targets.items()
        ],
    }
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    process = Process.start(
        "prometheus",
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={work / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        work,
    )
    url = f"http://127.0.0.1:{port}"
    process.wait_http_ok(f"{url}/-/ready")
    return process, url


def prom_api(base: str, endpoint: str, **params: str) -> Any:
    """Prometheus HTTP API call; a query error is an AssertionError naming the query."""
    query = urllib.parse.urlencode(params)
    status, body = http_get(f"{base}/api/v1/{endpoint}?{query}", timeout=10)
    payload = json.loads(body or b"{}")
    if status != 200 or payload.get("status") != "success":
        raise AssertionError(f"{endpoint} {params}: HTTP {status} {payload}")
    return payload["data"]
