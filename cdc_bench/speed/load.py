"""Machine load during a speed run: sampled, recorded, and judged against the number of cores.

A 1-minute load average above the core count means runnable threads were waiting for a core during the run:
wall times are then inflated by an unknown amount (CPU times much less so). The speed command warns, and with
``--strict`` refuses to measure or to give a verdict (exit status 3). A sweep records the same watch in its
manifest (sampled as rows arrive, at most every :data:`SWEEP_SAMPLE_S` seconds), so a figure of its decode times
can say how busy the machine was.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..errors import CdcBenchError


class MachineBusy(CdcBenchError):
    """The load average exceeded the number of cores and the caller asked to refuse (``--strict``)."""

    exit_code = 3


def load_average() -> list[float] | None:
    """1/5/15-minute load averages (``None`` where the platform has none), recorded before and after a run."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def load_1min() -> float | None:
    """The 1-minute load average (``None`` where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


#: a sweep's rows can arrive many per second; its load is sampled at most this often (plus start and end)
SWEEP_SAMPLE_S = 10.0


class LoadMonitor:
    """Samples the 1-minute load average at chosen moments (start, after every timed round, end)."""

    def __init__(self, cores: int | None = None, strict: bool = False):
        self.cores = cores or os.cpu_count() or 1
        self.strict = strict
        self.samples: list[float] = []
        self._last_sample = float("-inf")

    @property
    def peak(self) -> float | None:
        return max(self.samples) if self.samples else None

    @property
    def busy(self) -> bool:
        return self.peak is not None and self.peak > self.cores

    def describe(self) -> str:
        return (f"the 1-minute load average reached {self.peak:.2f} on {self.cores} cores: other processes "
                "competed for the CPU during the run")

    def sample(self, where: str = "") -> float | None:
        """Record the load now; raise :class:`MachineBusy` in strict mode when it exceeds the cores."""
        self._last_sample = time.monotonic()
        value = load_1min()
        if value is not None:
            self.samples.append(round(value, 2))
            if self.strict and value > self.cores:
                raise MachineBusy(f"refusing to measure ({'--strict'}{', ' + where if where else ''}): "
                                  f"load average {value:.2f} exceeds the {self.cores} cores; run when the machine "
                                  "is quiet, or without --strict to measure anyway (CPU time is still compared)")
        return value

    def sample_every(self, seconds: float) -> float | None:
        """:meth:`sample`, unless the last sample is less than ``seconds`` old (then nothing is recorded)."""
        if time.monotonic() - self._last_sample < seconds:
            return None
        return self.sample()

    def as_dict(self) -> dict[str, Any]:
        return {"cores": self.cores, "peak_1min": self.peak, "busy": self.busy, "samples": self.samples}
