"""Executors run independent tasks and hand back each result as it finishes.

The runner only needs :meth:`Executor.run`; a cluster engine can implement the same method later. Tasks must be
picklable and the task function pure (its inputs are in the task, its output is the returned row).
"""

from __future__ import annotations

import os
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import as_completed
from typing import Callable, Iterable, Iterator, Protocol, TypeVar

from ..errors import CdcBenchError, EnvironmentFault

T = TypeVar("T")
R = TypeVar("R")


class TaskTimeout(CdcBenchError):
    """A task ran past its time limit; its worker was killed."""


class WorkerDied(EnvironmentFault):
    """The worker process running a task died (crash, out of memory): an environment error, retried next run."""


class Executor(Protocol):
    def run(self, fn: Callable[[T], R], tasks: Iterable[T],
            timeout: float | None) -> Iterator[tuple[T, R | BaseException]]:
        """Yield ``(task, result)`` pairs in completion order; ``result`` is the exception when a task failed."""
        ...


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's: a job pinned to a few cores must
    not give every worker threads for all of the host's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def _threads_from_env() -> int | None:
    """OMP_NUM_THREADS, when the user set it, is the threads per worker (as torch honours it in one process)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def init_worker(threads: int) -> None:
    """Give the worker its share of the cores (no oversubscription) and let it reuse freed memory.

    A worker ignores SIGINT: Ctrl-C reaches the whole process group, and the parent alone decides what a stop
    means (it stops the pool); a worker interrupted mid-item must not hand back a failure that would be stored.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Keep freed memory in the worker instead of returning it to the OS after every item (glibc only).

    An item's metrics allocate and free tensors of a few MB each; glibc hands such blocks back to the OS and the
    next item page-faults them in again, which was ~40% of a JPEG item's CPU time (MS-SSIM on Kodak).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 2 ** 20)   # blocks up to 32 MB (glibc's maximum) come from the reusable heap
    mallopt(m_trim_threshold, 256 * 2 ** 20)  # and the heap is not trimmed until 256 MB of it are free


class ProcessExecutor:
    """A local pool of worker processes (pebble), with a per-task timeout that kills a hung worker.

    pebble rather than concurrent.futures: the standard pool cannot stop a task that hangs, and one hung codec
    must not end the sweep.
    """

    def __init__(self, workers: int = 1, threads_per_worker: int | None = None):
        self.workers = max(1, workers)
        self.threads = threads_per_worker or _threads_from_env() or max(1, usable_cores() // self.workers)

    def run(self, fn, tasks, timeout=None):
        from pebble import ProcessExpired, ProcessPool

        tasks = list(tasks)
        pool = ProcessPool(max_workers=self.workers, initializer=init_worker, initargs=(self.threads,))
        futures = {pool.schedule(fn, args=(task,), timeout=timeout): task for task in tasks}
        finished = False
        try:
            for future in as_completed(futures):
                task = futures[future]
                try:
                    yield task, future.result()
                except FutureTimeout:
                    yield task, TaskTimeout(f"no result after {timeout:g} s; the worker was stopped")
                except ProcessExpired as err:
                    yield task, WorkerDied(f"worker process died (exit code {err.exitcode})")
                except Exception as err:  # noqa: BLE001 - the task's own failure, reported per item
                    yield task, err
            finished = True
        finally:
            if finished:
                pool.close()
                pool.join()
            else:
                # Stopped early (Ctrl-C, SIGTERM, an error in the caller): terminate the workers now. Cancelling
                # the futures one by one instead made pebble kill and respawn a worker per running task, and
                # leaving the with-block waited for every queued task: 30 s to minutes for a "stop".
                pool.stop()
                pool.join(timeout=10)


class InlineExecutor:
    """Runs tasks one after another in this process (no timeouts): for debugging and tiny runs."""

    def run(self, fn, tasks, timeout=None):
        for task in tasks:
            try:
                yield task, fn(task)
            except Exception as err:  # noqa: BLE001
                yield task, err
