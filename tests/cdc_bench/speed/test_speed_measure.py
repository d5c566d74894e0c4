"""``speed.measure``: summaries of repeated timings and the peak-RSS sampler."""

from __future__ import annotations

import mmap
import time

import numpy as np
import pytest

from cdc_bench.speed import PeakRSS, summarize


def test_summarize_median_quartiles_and_range():
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median"], s["q1"], s["q3"], s["iqr"], s["min"], s["max"], s["n"]) == (3, 2, 4, 2, 1, 5, 5)
    assert s["times"] == [5.0, 1.0, 3.0, 2.0, 4.0]
    with pytest.raises(ValueError):
        summarize([])


def _fresh_pages(size: int) -> mmap.mmap:
    """``size`` bytes of newly mapped, written memory: new resident pages whatever the allocator already holds
    (a malloc'd block could reuse pages an earlier test left resident, and then RSS would not rise)."""
    buf = mmap.mmap(-1, size)
    np.frombuffer(buf, dtype=np.uint8)[:] = 1
    return buf


def test_peak_rss_sees_a_transient_allocation():
    size = 200 * 1024 * 1024
    with PeakRSS() as mem:
        block = _fresh_pages(size)
        deadline = time.monotonic() + 10
        # wait (bounded) until the sampler thread has run while the block was alive, then free it
        while mem.peak_bytes - mem.baseline_bytes < 0.75 * size and time.monotonic() < deadline:
            time.sleep(0.01)
        block.close()
    assert mem.peak_bytes - mem.baseline_bytes >= 0.75 * size


def test_peak_rss_counts_memory_still_held_at_exit():
    with PeakRSS(interval=60) as mem:  # the thread never samples: only the exit sample can see it
        block = _fresh_pages(100 * 1024 * 1024)
    block.close()
    assert mem.peak_mib - mem.baseline_mib >= 75


def test_timed_separates_cpu_time_from_waiting():
    from cdc_bench.speed import timed

    timing, out = timed(lambda: time.sleep(0.2) or "slept")
    assert out == "slept" and timing.wall >= 0.2 and timing.cpu < 0.05 and timing.cuda is None


def test_cpu_time_leaves_out_the_memory_samplers_thread():
    from cdc_bench.speed import timed

    with PeakRSS(interval=0.0005) as mem:
        timing, _ = timed(lambda: time.sleep(0.3), other_cpu=lambda: mem.cpu_seconds)
    assert mem.cpu_seconds > 0          # the sampler did use CPU meanwhile ...
    assert timing.cpu < mem.cpu_seconds  # ... and it is not counted as the call's
