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
"""

from __future__ import annotations

import threading
import time
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

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss
        if rss > self.peak_bytes:
            self.peak_bytes = rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakRSS":
        self.baseline_bytes = self.peak_bytes = self._proc.memory_info().rss
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


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    """Run ``fn`` once; its wall time in seconds (``perf_counter``, synchronised before and after) and result."""
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - start, out
