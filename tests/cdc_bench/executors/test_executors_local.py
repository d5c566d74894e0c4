"""Threads per worker process: each worker gets its share of the usable cores, or what the user asked for."""

from __future__ import annotations

import os

import pytest

from cdc_bench.executors.local import ProcessExecutor, usable_cores


def _worker_threads(_):
    import torch

    return torch.get_num_threads()


def test_usable_cores_follow_the_affinity_mask():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity API on this platform")
    assert usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_share_the_cores(monkeypatch, workers):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    executor = ProcessExecutor(workers)
    assert executor.threads == max(1, usable_cores() // workers)
    seen = {result for _, result in executor.run(_worker_threads, range(2 * workers))}
    assert seen == {executor.threads}


def test_explicit_threads_win(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert ProcessExecutor(2).threads == 3  # the user's setting, as torch honours it in one process
    assert ProcessExecutor(2, threads_per_worker=1).threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert ProcessExecutor(1).threads == usable_cores()
    seen = {result for _, result in ProcessExecutor(1, threads_per_worker=1).run(_worker_threads, range(2))}
    assert seen == {1}


def _faults_per_item_metrics(_):
    import resource

    import numpy as np

    from cdc_bench.metrics.distortion import ms_ssim, psnr

    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (512, 768, 3), dtype=np.uint8)
    recons = [np.clip(original.astype(int) + rng.integers(-9, 10, original.shape), 0, 255).astype(np.uint8)
              for _ in range(3)]
    faults = []
    for i in range(10):  # the first calls warm up (first allocations, kernels)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        psnr(original, recons[i % 3])  # an item's metrics, as the runner measures them
        ms_ssim(original, recons[i % 3])
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults[3:]


def test_workers_reuse_freed_memory():
    """Without it every Kodak-size item's metrics page-fault their temporaries back in (~7,800 faults a call here,
    ~40% of an item's CPU time); a worker keeps the memory, so most repeated calls fault nothing (median 0)."""
    import ctypes

    try:
        ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    [(_, faults)] = list(ProcessExecutor(1, threads_per_worker=1).run(_faults_per_item_metrics, [0]))
    assert sorted(faults)[len(faults) // 2] < 500, faults  # median: glibc still grows its heap now and then
