"""Real headless Chromium (Debian's `chromium`) driven over the DevTools protocol with
aiohttp's websocket client: open a page, evaluate JavaScript in it, take a screenshot.
One browser per `open_page` block, with a fresh profile, ended by its own PID."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers.tools import require

# Root needs --no-sandbox; the rest keeps Chromium off the network this machine does
# not have (without them it retries refused connections at every start).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
)
START_TIMEOUT = 60.0  # a cold start on a busy 2-core machine: seconds, not minutes


class Page:
    """One page target, spoken to over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": method, "params": params or {}})
        while True:  # events arrive in between; only our answer counts
            message = await self._ws.receive_json(timeout=START_TIMEOUT)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression!r} raised: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def screenshot(self) -> bytes:
        """The viewport as PNG bytes."""
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(shot["data"])


async def _debug_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    # With --remote-debugging-port=0 Chromium picks a free port and writes it here.
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"chromium exited ({process.returncode}) before it listened")
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(marker.read_text().splitlines()[0])
        if time.monotonic() > deadline:
            raise RuntimeError(f"chromium wrote no {marker.name} within {START_TIMEOUT} s")
        await asyncio.sleep(0.1)


async def _page_target(session: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while True:  # the first tab may be listed a moment after the port opens
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                for target in await response.json():
                    if target.get("type") == "page":
                        return dict(target)
        if time.monotonic() > deadline:
            raise RuntimeError(f"chromium listed no page within {START_TIMEOUT} s")
        await asyncio.sleep(0.1)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()  # the browser ends its own renderer and helper processes
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            # Its own session (start_new_session): the group is this browser's alone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


@asynccontextmanager
async def open_page(
    url: str, workdir: Path, size: tuple[int, int] = (1280, 900)
) -> AsyncIterator[Page]:
    """Chromium showing `url` at `size` (CSS pixels) until the block ends."""
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    log = (workdir / "chromium.log").open("wb")
    argv = [
        require("chromium"),
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        url,
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    try:
        port = await _debug_port(profile, process)
        async with aiohttp.ClientSession() as session:
            target = await _page_target(session, port)
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                # The window size includes the browser's frame; the viewport is set exactly.
                metrics = {"width": size[0], "height": size[1], "deviceScaleFactor": 1}
                await page.call("Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False})
                yield page
    finally:
        await _stop(process)
        log.close()
