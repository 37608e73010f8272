"""Waiting for a state the system must reach by itself: a bounded poll, never a sleep
standing in for synchronisation (and no timing assert: the bound only stops a hang)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], within: float = 5.0, what: str = ""
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within} s: {what}")
        await asyncio.sleep(0.005)
