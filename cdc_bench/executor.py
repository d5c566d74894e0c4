"""Executors run independent tasks and hand back each result as it finishes.

The runner only needs :meth:`Executor.run`; a cluster engine can implement the same method later. Tasks must be
picklable and the task function pure (its inputs are in the task, its output is the returned row).
"""

from __future__ import annotations

import os
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import as_completed
from typing import Callable, Iterable, Iterator, Protocol, TypeVar

from .errors import CdcBenchError, EnvironmentFault

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


def _init_worker(threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


class ProcessExecutor:
    """A local pool of worker processes (pebble), with a per-task timeout that kills a hung worker.

    pebble rather than concurrent.futures: the standard pool cannot stop a task that hangs, and one hung codec
    must not end the sweep.
    """

    def __init__(self, workers: int = 1, threads_per_worker: int | None = None):
        self.workers = max(1, workers)
        cores = os.cpu_count() or 1
        self.threads = threads_per_worker or max(1, cores // self.workers)

    def run(self, fn, tasks, timeout=None):
        from pebble import ProcessExpired, ProcessPool

        tasks = list(tasks)
        with ProcessPool(max_workers=self.workers, initializer=_init_worker, initargs=(self.threads,)) as pool:
            futures = {pool.schedule(fn, args=(task,), timeout=timeout): task for task in tasks}
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
            finally:
                for future in futures:
                    future.cancel()


class InlineExecutor:
    """Runs tasks one after another in this process (no timeouts): for debugging and tiny runs."""

    def run(self, fn, tasks, timeout=None):
        for task in tasks:
            try:
                yield task, fn(task)
            except Exception as err:  # noqa: BLE001
                yield task, err
