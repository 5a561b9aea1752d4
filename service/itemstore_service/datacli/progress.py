"""How far an import (or a copy) has got, on stderr: a live bar on a terminal (tqdm:
items, items/s and, when the total is known, the ETA), plain periodic lines
otherwise (a log file or CI gets one line every ``every`` seconds, not a bar
redrawn in place)."""

from __future__ import annotations

import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def advance(self, items: int) -> None:
        """``items`` more lines are done (written, kept or skipped)."""

    def close(self) -> None: ...


class ProgressBar:
    def __init__(self, stream: TextIO, total: int | None) -> None:
        from tqdm import tqdm  # imported by the commands that draw it only

        self._bar = tqdm(
            total=total, unit=" items", unit_scale=True, file=stream, dynamic_ncols=True
        )

    def advance(self, items: int) -> None:
        self._bar.update(items)

    def close(self) -> None:
        self._bar.close()


class ProgressLines:
    def __init__(self, stream: TextIO, total: int | None, every: float = 5.0) -> None:
        self._stream = stream
        self._total = total
        self._every = every
        self._done = 0
        self._started = self._last = time.monotonic()

    def advance(self, items: int) -> None:
        self._done += items
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            rate = self._done / (now - self._started)
            of = f" of {self._total}" if self._total is not None else ""
            print(f"{self._done}{of} items, {rate:.0f} items/s", file=self._stream, flush=True)

    def close(self) -> None:
        pass


def progress_for(stream: TextIO, total: int | None) -> Progress:
    """A bar when ``stream`` is a terminal, periodic lines otherwise."""
    return ProgressBar(stream, total) if stream.isatty() else ProgressLines(stream, total)
