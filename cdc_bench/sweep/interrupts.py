"""A sweep stopped by Ctrl-C or SIGTERM: what the run records and how the command line ends.

Ctrl-C arrives as :class:`KeyboardInterrupt`; :func:`sigterm_raises` turns SIGTERM into :class:`RunStopped` for
the duration of a sweep. Both are BaseExceptions, so no ``except Exception`` on the way swallows them. The
sweep's caller (:func:`cdc_bench.sweep.api.run`) records the manifest as interrupted and raises
:class:`SweepInterrupted`, which the command turns into one line and exit status 128 + signal (130 / 143).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Iterator


class RunStopped(BaseException):
    """SIGTERM during a sweep."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SweepInterrupted(KeyboardInterrupt):
    """A sweep was stopped; its finished rows are stored and its manifest says interrupted."""

    def __init__(self, signum: int, rows_saved: int, out: Path) -> None:
        super().__init__(f"{signal.Signals(signum).name}: {rows_saved} rows saved in {out}; rerun the same "
                         f"command to resume")
        self.signum, self.rows_saved, self.out = int(signum), rows_saved, out

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_of(stop: BaseException) -> int:
    return stop.signum if isinstance(stop, RunStopped) else int(signal.SIGINT)


def _raise_stop(signum, _frame) -> None:
    raise RunStopped(signum)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`RunStopped` in the main thread while the block runs (elsewhere: left as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
