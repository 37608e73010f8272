"""nginx from Debian in the two roles of the reference benchmark, one foreground
master with one worker: the static upstream (a fixed JSON or SSE answer to POST
/v1/chat/completions) and the reference proxy in front of it (keep-alive upstream
pool, no response buffering), as REAL-COMPONENTS.md describes."""

from __future__ import annotations

import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.bench.suite.payloads import json_answer, sse_answer
from proxy.bench.suite.processes import pinned, spawn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

KINDS = ("json", "sse")
_TYPES = {"json": "application/json", "sse": "text/event-stream"}


@dataclass(frozen=True, slots=True)
class Nginx:
    pid: int  # the master; the worker is its child (procfs trees count both)
    upstream: dict[str, str]  # kind -> base URL of the static answer
    proxy: dict[str, str]  # kind -> base URL of nginx proxying to that upstream


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now (nginx cannot listen on port 0 and tell)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def config(folder: Path, upstream_ports: dict[str, int], proxy_ports: dict[str, int]) -> str:
    """The whole nginx.conf; every path nginx writes is under `folder`."""
    blocks = []
    for kind in KINDS:
        blocks.append(
            f"""
  upstream {kind}_upstream {{
    server 127.0.0.1:{upstream_ports[kind]};
    keepalive 256;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{upstream_ports[kind]} backlog=4096;
    location = /v1/chat/completions {{
      default_type {_TYPES[kind]};
      alias {folder}/answer.{kind};
      error_page 405 =200 $uri;
    }}
    location / {{ return 404; }}
  }}
  server {{
    listen 127.0.0.1:{proxy_ports[kind]} backlog=4096;
    location / {{
      proxy_pass http://{kind}_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}"""
        )
    temp = "\n".join(
        f"  {name}_temp_path {folder}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
{temp}
{"".join(blocks)}
}}
"""


def write_files(folder: Path, upstream_ports: dict[str, int], proxy_ports: dict[str, int]) -> Path:
    """The answers and nginx.conf; returns the latter's path."""
    folder.mkdir(parents=True, exist_ok=True)
    # The worker runs as an unprivileged user when the master is root: it must be
    # able to read the answers (the folders above must let it through too).
    folder.chmod(0o755)
    Path(folder, "answer.json").write_bytes(json_answer())
    Path(folder, "answer.sse").write_bytes(sse_answer())
    conf = Path(folder, "nginx.conf")
    conf.write_text(config(folder, upstream_ports, proxy_ports))
    return conf


@asynccontextmanager
async def running_nginx(binary: str, folder: Path, cpu: int | None) -> AsyncIterator[Nginx]:
    """nginx serving both answers and proxying to both until the block ends."""
    ports = free_ports(2 * len(KINDS))
    upstream_ports = dict(zip(KINDS, ports[: len(KINDS)], strict=True))
    proxy_ports = dict(zip(KINDS, ports[len(KINDS) :], strict=True))
    conf = write_files(folder, upstream_ports, proxy_ports)
    argv = pinned([binary, "-c", str(conf), "-e", str(folder / "error.log")], cpu)
    async with spawn("nginx", argv, None, str(folder), ports=tuple(ports)) as (pid, _):
        yield Nginx(
            pid,
            {kind: f"http://127.0.0.1:{port}" for kind, port in upstream_ports.items()},
            {kind: f"http://127.0.0.1:{port}" for kind, port in proxy_ports.items()},
        )
