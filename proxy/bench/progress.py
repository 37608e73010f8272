"""A one-line live progress bar on stderr (a plain line per level when not a TTY)."""

from __future__ import annotations

from typing import TextIO

from proxy.bench.sweep import Progress


class ProgressBar:
    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._live = stream.isatty()
        self._current: tuple[str, float] | None = None
        self._last: Progress | None = None

    def __call__(self, event: Progress) -> None:
        key = (event.endpoint, event.level)
        if key != self._current:
            self._finish()
            self._current = key
        self._last = event
        if self._live:
            self._stream.write("\r" + self._line(event))
            self._stream.flush()

    def _line(self, event: Progress) -> str:
        if event.total:
            fraction = event.done / event.total
            count = f"{event.done}/{event.total}"
        else:
            fraction = event.elapsed / event.level_seconds if event.level_seconds else 0.0
            count = f"{event.done} req"
        fraction = min(1.0, fraction)
        filled = round(fraction * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        return f"{event.endpoint} @ {event.level:g}: [{bar}] {count} {event.elapsed:6.1f}s"

    def _finish(self) -> None:
        if self._last is None:
            return
        if self._live:
            self._stream.write("\n")
        else:
            self._stream.write(self._line(self._last) + "\n")
        self._stream.flush()
        self._last = None

    def close(self) -> None:
        self._finish()
