"""The bare passthrough: the simplest proxy on sla-proxy's own stack (aiohttp +
uvloop), the baseline its hot path is judged against. One pooled ClientSession,
headers copied minus hop-by-hop, the body relayed as it arrives with iter_any().
No admission, no parsing, no metrics. Run as its own process:

    python -m proxy.bench.suite.passthrough UPSTREAM_URL [--port P]
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import uvloop
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer"}
    | {"transfer-encoding", "upgrade", "host"}
)


def _copy(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


class Passthrough:
    def __init__(self, upstream: str, session: aiohttp.ClientSession) -> None:
        self.upstream, self.session = upstream.rstrip("/"), session

    async def relay(self, request: web.Request) -> web.StreamResponse:
        async with self.session.request(
            request.method,
            self.upstream + str(request.rel_url),
            headers=_copy(request.headers, HOP_BY_HOP | {"content-length"}),
            data=await request.read() or None,
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status, headers=_copy(upstream.headers, HOP_BY_HOP)
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response


async def serve(upstream: str, host: str, port: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", Passthrough(upstream, session).relay)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        print(f"passthrough listening on http://{host}:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()  # until SIGTERM ends the process


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m proxy.bench.suite.passthrough")
    parser.add_argument("upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvloop.run(serve(args.upstream, args.host, args.port))


if __name__ == "__main__":
    main()
