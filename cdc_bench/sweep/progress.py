"""The sweep's progress: tqdm's bar on a terminal; elsewhere (a log file, CI, a batch job) one plain line every
few percent or every minute, whichever comes first, instead of tqdm's carriage-return frames.

tqdm's ``mininterval``/``miniters`` would still write ``\\r`` frames into the file; the line logger writes
whole lines (count, percent, elapsed, remaining at the rate so far, and the item just finished).
"""

from __future__ import annotations

import sys
import time
from typing import IO

STEP_PERCENT = 5.0
EVERY_S = 60.0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class LineProgress:
    """The part of tqdm's interface the sweep uses (``update``, ``set_postfix_str``, ``close``), as log lines."""

    def __init__(self, total: int, stream: IO[str], desc: str = "cdc-bench", step_percent: float = STEP_PERCENT,
                 every_s: float = EVERY_S, clock=time.monotonic) -> None:
        self.total, self.stream, self.desc = total, stream, desc
        self.step, self.every_s, self.clock = step_percent, every_s, clock
        self.n = 0
        self.postfix = ""
        self.start = self.last_time = clock()
        self.last_percent = 0.0
        self.closed = False

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        percent = 100.0 * self.n / self.total if self.total else 100.0
        if self.n >= self.total or percent - self.last_percent >= self.step or now - self.last_time >= self.every_s:
            self._line(now, percent)

    def _line(self, now: float, percent: float) -> None:
        elapsed = now - self.start
        left = elapsed / self.n * (self.total - self.n) if self.n else 0.0
        tail = f", last: {self.postfix}" if self.postfix else ""
        self.stream.write(f"{self.desc}: {self.n}/{self.total} items ({percent:.0f}%), {_clock(elapsed)} elapsed, "
                          f"~{_clock(left)} left{tail}\n")
        self.stream.flush()
        self.last_time, self.last_percent = now, percent

    def close(self) -> None:
        if not self.closed and self.n and self.last_percent < 100.0 * self.n / max(self.total, 1):
            self._line(self.clock(), 100.0 * self.n / max(self.total, 1))
        self.closed = True


class _Silent:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, text: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def make_progress(total: int, enabled: bool, stream: IO[str] | None = None):
    """tqdm on a terminal, :class:`LineProgress` otherwise, nothing when disabled."""
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        return _Silent()
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, unit="item", desc="cdc-bench", dynamic_ncols=True, file=stream)
    return LineProgress(total, stream)
