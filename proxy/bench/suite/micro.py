"""Hot-path micro-benchmarks, each against the plainest code doing the same job:
the SSE relay, the limiter and the rolling latency window."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from proxy.bench.suite.timing import MicroResult, Timed, compare, event_loop_runner, timed


def sse_stream(tokens: int, seed: int = 0) -> list[bytes]:
    """One vLLM-shaped chat stream, one event per read: role, content, finish, usage, DONE."""
    rng = random.Random(seed)
    words = ("the", " model", " is", " a", " simulated", " stand", " in", " for", " vLLM")
    head: dict[str, Any] = {
        "id": f"chatcmpl-{rng.getrandbits(128):032x}",
        "object": "chat.completion.chunk",
    }
    head |= {"created": 1795841907, "model": "meta-llama/Llama-3.1-8B-Instruct"}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + json.dumps(head | {"choices": choices} | extra).encode() + b"\n\n"

    def choice(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [event([choice({"role": "assistant", "content": ""})])]
    events += [event([choice({"content": rng.choice(words)})]) for _ in range(tokens)]
    events.append(event([choice({}, "length")]))
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": tokens + 12}
    events += [event([], usage=usage), b"data: [DONE]\n\n"]
    return events


def bench_sse(repeats: int, streams: int, tokens: int = 64) -> list[MicroResult]:
    from proxy.server.sse import SseRelay

    stream = sse_stream(tokens)
    ops = streams * len(stream)

    def relay(strip_usage: bool) -> Timed:
        def work() -> None:
            for _ in range(streams):
                relay = SseRelay(strip_usage)
                for data in stream:
                    relay.feed(data)
                relay.flush()

        return timed(work)

    def split() -> None:
        for _ in range(streams):
            buffer = b""
            for data in stream:
                buffer += data
                out = []
                while (end := buffer.find(b"\n\n")) >= 0:
                    out.append(buffer[: end + 2])
                    buffer = buffer[end + 2 :]
                b"".join(out)

    baseline = ("bytes.find(b'\\n\\n') split loop", timed(split))
    return [
        compare(
            f"sse relay ({which})",
            (f"SseRelay({strip}).feed", relay(strip)),
            baseline,
            "chunk",
            ops,
            repeats,
        )
        for which, strip in (("client asked usage", False), ("proxy adds usage", True))
    ]


Gate = Callable[[], AbstractAsyncContextManager[object]]


async def _admissions(gate: Gate, tasks: int, per_task: int, yield_inside: bool) -> float:
    async def worker() -> None:
        for _ in range(per_task):
            async with gate():
                if yield_inside:
                    await asyncio.sleep(0)  # hold the permit across a loop turn

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter() - start


def _gate_pair(
    runner: asyncio.Runner, limit: int, tasks: int, per_task: int, yield_inside: bool
) -> tuple[Timed, Timed]:
    from proxy.limiter import Limiter, Priority

    def limiter_run() -> float:
        limiter = Limiter(limit, tasks)
        gate = lambda: limiter.acquire(Priority.NORMAL, 60.0)  # noqa: E731
        return runner.run(_admissions(gate, tasks, per_task, yield_inside))

    def semaphore_run() -> float:
        async def go() -> float:
            semaphore = asyncio.Semaphore(limit)
            return await _admissions(lambda: semaphore, tasks, per_task, yield_inside)

        return runner.run(go())

    return limiter_run, semaphore_run


def bench_limiter(repeats: int, ops: int) -> list[MicroResult]:
    """Uncontended (the never-binding proxy of this suite), and 16 tasks through a
    limit of 4 where every release hands the permit to a waiter."""
    results = []
    with event_loop_runner() as runner:
        for name, limit, tasks, yield_inside in (
            ("limiter, free permit", 1024, 1, False),
            ("limiter, 16 tasks over limit 4", 4, 16, True),
        ):
            per_task = max(1, ops // tasks)
            target, baseline = _gate_pair(runner, limit, tasks, per_task, yield_inside)
            results.append(
                compare(
                    name,
                    ("Limiter.acquire async with", target),
                    ("asyncio.Semaphore async with", baseline),
                    "admission",
                    per_task * tasks,
                    repeats,
                )
            )
    return results


def bench_window(repeats: int, ops: int, per_snapshot: int = 200) -> MicroResult:
    """Samples arriving at 200/s with one snapshot per second (the control interval),
    through a full 30 s / 4096-sample window."""
    from proxy.core.window import LatencyWindow

    rng = random.Random(1)
    values = [rng.lognormvariate(-2.0, 0.5) for _ in range(ops)]
    max_samples, step = 4096, 1 / per_snapshot

    def window() -> None:
        win = LatencyWindow(30.0, max_samples)
        for index, value in enumerate(values):
            win.add(value, index * step)
            if index % per_snapshot == per_snapshot - 1:
                win.snapshot(index * step).percentile(0.9)

    def plain() -> None:
        samples: list[float] = []
        for index, value in enumerate(values):
            samples.append(value)
            if index % per_snapshot == per_snapshot - 1:
                del samples[:-max_samples]
                ordered = sorted(samples)
                ordered[int(0.9 * (len(ordered) - 1))]

    return compare(
        "rolling window",
        ("LatencyWindow.add + snapshot", timed(window)),
        ("list.append + sorted", timed(plain)),
        "sample",
        ops,
        repeats,
    )


def micro_benchmarks(repeats: int = 7, scale: float = 1.0) -> list[MicroResult]:
    def n(base: int) -> int:
        return max(1, round(base * scale))

    return [
        *bench_sse(repeats, streams=n(60)),
        *bench_limiter(repeats, ops=n(20_000)),
        bench_window(repeats, ops=n(8_000)),
    ]
