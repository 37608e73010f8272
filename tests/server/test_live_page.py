"""The live page on the admin port (`GET /`): self-contained, fed by /status, and in
real headless Chromium showing the numbers /status gives at the same moment."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.server.app import RunningProxy, running_proxy
from tests.helpers.chromium import Page, open_page
from tests.helpers.polling import eventually
from tests.helpers.settings import ProxyFactory, proxy_settings

SIGNALS = ("ttft", "tpot", "e2e")


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.content_type, await response.text()


async def test_root_of_the_admin_port_is_the_live_page(proxy: RunningProxy) -> None:
    status, content_type, html = await get(f"{proxy.admin_url}/")
    assert (status, content_type) == (200, "text/html")
    assert "<svg" in html and 'fetch("status"' in html


async def test_the_page_loads_nothing_from_elsewhere(proxy: RunningProxy) -> None:
    _, _, html = await get(f"{proxy.admin_url}/")
    for outside in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert outside not in html
    assert len(html.encode()) < 10_000  # a few KB, not a framework


async def test_status_counts_every_shed_request(make_proxy: ProxyFactory) -> None:
    async with make_proxy(algorithm="fixed", initial_limit=1, queue_size=0) as running:
        answers = await asyncio.gather(*(chat(running.url) for _ in range(6)))
        _, _, text = await get(f"{running.admin_url}/status")
        assert json.loads(text)["shed_total"] == answers.count(429) > 0


async def chat(base: str, max_tokens: int = 4) -> int:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
        "stream": True,
    }
    # The client's own queue deadline: long, so held requests wait however far the
    # SLA's budget would have shed them (that budget is not what this test is about).
    headers = {"x-queue-timeout": "120"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/v1/chat/completions", json=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


# --- in Chromium ------------------------------------------------------------------


@dataclass
class Upstream:
    """Streams a short answer; while `hold` is clear, requests wait before their first
    byte, so in-flight and queue stay exactly where the test put them."""

    url: str = ""
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0


HOLD = web.AppKey("upstream", Upstream)


async def _chat(request: web.Request) -> web.StreamResponse:
    upstream = request.app[HOLD]
    upstream.waiting += 1
    try:
        await upstream.hold.wait()
    finally:
        upstream.waiting -= 1
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for index in range(4):
        await asyncio.sleep(0.01)
        chunk = {"id": "x", "choices": [{"index": 0, "delta": {"content": f"t{index} "}}]}
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    await response.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode())
    await response.write(b"\n\ndata: [DONE]\n\n")
    return response


async def _health(request: web.Request) -> web.Response:
    return web.json_response({})


@asynccontextmanager
async def held_upstream() -> AsyncIterator[Upstream]:
    upstream = Upstream()
    upstream.hold.set()
    app = web.Application()
    app[HOLD] = upstream
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/health", _health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield upstream
    finally:
        upstream.hold.set()
        await runner.cleanup()


def shown_of(status: dict[str, Any]) -> dict[str, Any]:
    """What the page must show for this /status document."""
    alert = status["alert"]["state"] if status["alert"] else "inactive"
    values: dict[str, Any] = {
        "limit": status["limit"],
        "inflight": status["inflight"],
        "queued": status["queued"],
        "shed-total": status["shed_total"],
        "alert": alert,
    }
    for name in SIGNALS:
        signal = status["signals"][name]
        values[f"{name}-p"] = (signal["at_sla_percentile"], signal["target"])
    return values


# Reads the page's numbers as shown: the raw value (data-value) and the text.
READ_PAGE = """(() => {
  const v = (id) => document.getElementById(id);
  const num = (s) => (s === "" ? null : Number(s));
  const out = {polls: Number(document.body.dataset.polls || 0), text: {}};
  for (const id of ["limit", "inflight", "queued", "shed-total"]) {
    out[id] = num(v(id).dataset.value); out.text[id] = v(id).textContent;
  }
  out.alert = v("alert").dataset.value; out.text.alert = v("alert").textContent;
  for (const s of ["ttft", "tpot", "e2e"]) {
    const e = v(s + "-p");
    out[s + "-p"] = [num(e.dataset.value), num(e.dataset.target)];
    out.text[s + "-p"] = e.textContent;
  }
  out.lines = [...document.querySelectorAll("#chart-concurrency path")]
    .map((p) => (p.getAttribute("d").match(/L/g) || []).length);
  return out;
})()"""


async def polls(page: Page) -> int:
    count = await page.evaluate("Number(document.body?.dataset.polls || 0)")
    return int(count)


async def status_now(proxy: RunningProxy) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((await get(f"{proxy.admin_url}/status"))[2])
    return document


async def page_at_one_moment(page: Page, proxy: RunningProxy) -> tuple[dict[str, Any], Any]:
    """(/status's numbers, the page's) for a page render fetched between two /status
    reads that agree: the state held still across the page's fetch, so they must match.
    Retried when the state moved meanwhile (an alert changing state, say)."""
    for _ in range(10):
        before = shown_of(await status_now(proxy))
        seen = await polls(page)

        async def fetched_after_before(seen: int = seen) -> bool:
            # Two more renders: the second one's fetch started after `before` was read.
            return await polls(page) >= seen + 2

        await eventually(fetched_after_before, within=30, what="the page polls /status")
        shown = await page.evaluate(READ_PAGE)
        if shown_of(await status_now(proxy)) == before:
            return before, shown
    raise AssertionError("the proxy's state never held still across one page poll")


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_chromium_shows_the_numbers_of_status(tmp_path: Path) -> None:
    async with held_upstream() as upstream:
        settings = proxy_settings(
            upstream.url,
            algorithm="fixed",
            initial_limit=2,
            queue_size=2,
            queue_timeout=120,
            first_byte_timeout=120,
            window_seconds=600,
            window_min_samples=3,
            sla_ttft=0.5,
            sla_tpot=0.05,
            sla_e2e=1.0,
        )
        async with running_proxy(settings) as proxy:
            # Finished requests (latency samples) and sheds: 2 run, 2 wait, the rest 429.
            for _ in range(3):
                upstream.hold.clear()
                burst = [asyncio.create_task(chat(proxy.url)) for _ in range(8)]
                await eventually(
                    lambda burst=burst: sum(t.done() for t in burst) == 4, within=30, what="4 shed"
                )
                upstream.hold.set()
                assert sorted(await asyncio.gather(*burst)) == [200] * 4 + [429] * 4
            # Then hold 2 in flight and 2 queued, and shed one more.
            upstream.hold.clear()
            held = [asyncio.create_task(chat(proxy.url)) for _ in range(4)]
            await eventually(lambda: upstream.waiting == 2, within=30, what="2 held upstream")
            await eventually(
                lambda: proxy.state.admission.limiter.queued == 2, within=30, what="2 queued"
            )
            assert await chat(proxy.url) == 429

            async with open_page(f"{proxy.admin_url}/", tmp_path, size=(1280, 900)) as page:
                expected, shown = await page_at_one_moment(page, proxy)
                png = await page.screenshot()
            upstream.hold.set()
            assert await asyncio.gather(*held) == [200] * 4

    assert expected["shed-total"] == 3 * 4 + 1 and expected["inflight"] == 2
    assert all(expected[f"{name}-p"][0] is not None for name in SIGNALS)
    for key, value in expected.items():
        assert shown[key] == (list(value) if isinstance(value, tuple) else value), key
    for key in ("limit", "inflight", "queued", "shed-total", "alert"):
        assert shown["text"][key] == str(expected[key])
    for name in SIGNALS:
        p, target = expected[f"{name}-p"]
        assert shown["text"][f"{name}-p"] == f"{p * 1000:.1f} ms / {target * 1000:.1f} ms"
    assert min(shown["lines"]) >= 1  # the history is drawn as lines, not one dot
    (tmp_path / "live-page.png").write_bytes(png)
    assert png_size(png) == (1280, 900)
