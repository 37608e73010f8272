"""The live page on the admin port (`GET /`): one self-contained HTML file (no
external assets, a few KB of plain JS drawing inline SVG) that polls /status about
once a second and draws the last minutes, for people without Prometheus/Grafana."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web


@cache
def html() -> str:
    # Read once: the page is a package resource (proxy/server/page.html), not code.
    return files("proxy.server").joinpath("page.html").read_text(encoding="utf-8")


async def live_page(request: web.Request) -> web.Response:
    return web.Response(
        text=html(),
        content_type="text/html",
        # The page is static and tiny; what changes is the /status it polls.
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": _CSP},
    )


# Nothing but this page's own inline script and style, and fetches of its own origin.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
)
