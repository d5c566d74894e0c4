"""Timing and peak-memory primitives for the speed benchmark.

Peak CPU memory is the peak resident set size (RSS) of this process, sampled by a background thread with
psutil while the timed calls run. Why not the alternatives: ``resource.getrusage(...).ru_maxrss`` is the peak
over the whole process lifetime, so after the first large size every later row would report the same number;
``tracemalloc`` sees only allocations made through Python's allocator, not torch's or numpy's C buffers, which is
where a decoder's memory goes. A sampler can miss a spike shorter than its interval (5 ms), so the figure is a
lower bound on the true peak; the final sample is taken before the sampler stops, so memory still held at the
end is always counted. RSS also includes memory the allocator kept from earlier work, and reusing it does not
raise RSS: the figure is the process's peak footprint, not what one call allocated. On CUDA the figure is
``torch.cuda.max_memory_allocated`` (exact, tensors only).

Each timed call records three clocks (:class:`Timing`): wall time; CPU time, the process time of the threads
doing the work (``time.process_time`` less what the memory sampler's own thread used), which another process
competing for the cores hardly changes, so the regression gate decides on it on CPU runs; and on CUDA the GPU
time between two CUDA events recorded around the call.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import psutil

MIB = 1024 * 1024


def summarize(times: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated timings (seconds): median, quartiles, IQR, min, max, mean, and the raw list."""
    arr = np.asarray(times, dtype=float)
    if arr.size == 0:
        raise ValueError("no timings to summarize")
    q1, median, q3 = (float(v) for v in np.percentile(arr, [25, 50, 75]))
    return {
        "median": median, "q1": q1, "q3": q3, "iqr": q3 - q1,
        "min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean()),
        "n": int(arr.size), "times": [float(t) for t in arr],
    }


class PeakRSS:
    """Context manager: the peak RSS of this process while the block runs, sampled in a thread.

    ``baseline_bytes`` is the RSS on entry, ``peak_bytes`` the largest sample (entry and exit included).
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self.cpu_seconds = 0.0   # CPU time the sampler thread itself has used, so timings can leave it out

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss
        if rss > self.peak_bytes:
            self.peak_bytes = rss

    def _loop(self) -> None:
        start = time.thread_time()
        while not self._stop.wait(self.interval):
            self._sample()
            self.cpu_seconds = time.thread_time() - start

    def __enter__(self) -> "PeakRSS":
        self.baseline_bytes = self.peak_bytes = self._proc.memory_info().rss
        self.cpu_seconds = 0.0
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / MIB

    @property
    def baseline_mib(self) -> float:
        return self.baseline_bytes / MIB


def is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for queued GPU work on ``device`` (a no-op on CPU), so timings cover the work."""
    if not is_cuda(device):
        return lambda: None
    import torch

    dev = torch.device(device)
    return lambda: torch.cuda.synchronize(dev)


def reset_cuda_peak(device: str) -> None:
    if is_cuda(device):
        import torch

        torch.cuda.reset_peak_memory_stats(torch.device(device))


def cuda_peak_mib(device: str) -> float | None:
    """``torch.cuda.max_memory_allocated`` since the last reset, in MiB; ``None`` on CPU."""
    if not is_cuda(device):
        return None
    import torch

    return torch.cuda.max_memory_allocated(torch.device(device)) / MIB


@dataclass(frozen=True)
class Timing:
    """One call's cost in seconds: ``wall``; ``cpu`` (process time of the working threads); ``cuda`` (GPU time
    between CUDA events, ``None`` on CPU)."""

    wall: float
    cpu: float
    cuda: float | None = None


def timed(fn: Callable[[], Any], device: str = "cpu",
          other_cpu: Callable[[], float] = lambda: 0.0) -> tuple[Timing, Any]:
    """Run ``fn`` once and return its :class:`Timing` and result.

    The device is synchronised before and after, so the wall time covers the queued GPU work. ``other_cpu``
    returns the CPU seconds used so far by helper threads that are not part of the work (the memory sampler);
    their share is taken out of the process time.
    """
    sync = synchronizer(device)
    events = None
    if is_cuda(device):
        import torch

        events = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    sync()
    other0, cpu0 = other_cpu(), time.process_time()
    start = time.perf_counter()
    if events is not None:
        events[0].record()
    out = fn()
    if events is not None:
        events[1].record()
    sync()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0 - (other_cpu() - other0)
    cuda = events[0].elapsed_time(events[1]) / 1000 if events is not None else None
    return Timing(wall, max(cpu, 0.0), cuda), out
