"""A screenshot of a page after it has run for a while, in real headless Chromium:
how docs/live-page.png is made (the live page keeps its history in the browser, so
it must stay open while the demo runs).

    python -m tests.helpers.screenshot http://127.0.0.1:9464/ docs/live-page.png --after 150
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from tests.helpers.chromium import open_page


async def shoot(url: str, after: float, size: tuple[int, int]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="sla-proxy-shot-") as workdir:
        async with open_page(url, Path(workdir), size) as page:
            await asyncio.sleep(after)  # the page draws what it polled meanwhile
            return await page.screenshot()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--after", type=float, default=150.0, help="seconds open first")
    parser.add_argument("--size", default="1280x900", help="viewport, WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    png = asyncio.run(shoot(args.url, args.after, (width, height)))
    args.out.write_bytes(png)
    print(f"{args.out}: {len(png)} bytes")


if __name__ == "__main__":
    main()
