"""The killable child process that gives Dask workers a per-task timeout."""

import math
import os
import time

import pytest

from cdc_bench.executors.local import TaskTimeout, WorkerDied
from cdc_bench.executors.isolated import IsolatedWorker


def test_the_child_lives_on_between_tasks_and_is_replaced_after_a_timeout_or_a_crash():
    worker = IsolatedWorker()
    try:
        first = worker.call(os.getpgid, 0)
        assert worker.call(os.getpgid, 0) == first != os.getpid()  # caches (loaded weights) survive between tasks
        start = time.monotonic()
        with pytest.raises(TaskTimeout, match="after 0.5 s"):
            worker.call(time.sleep, 30, timeout=0.5)
        assert time.monotonic() - start < 10
        second = worker.call(os.getpgid, 0)
        assert second != first
        with pytest.raises(WorkerDied, match="exit code 7"):
            worker.call(os._exit, 7)
        with pytest.raises(ValueError, match="math domain"):  # the task's own exception comes back as itself
            worker.call(math.sqrt, -1.0)
        assert worker.call(print, "stray output goes to stderr, not into the answer pipe") is None
        third = worker.call(os.getpgid, 0)
        with pytest.raises(ModuleNotFoundError):  # a function the child cannot import: an error, not a dead child
            worker.call(test_the_child_lives_on_between_tasks_and_is_replaced_after_a_timeout_or_a_crash, None)
        assert worker.call(os.getpgid, 0) == third
    finally:
        worker.stop()


def test_the_childs_start_up_is_not_counted_in_the_first_items_timeout():
    """A fresh child imports torch and the codecs (seconds); an item of microseconds must not time out for it."""
    from cdc_bench.executors.isolated import IsolatedWorker

    worker = IsolatedWorker(threads=1)
    try:
        assert worker.call(sum, [1, 2, 3], timeout=0.5) == 6
    finally:
        worker.stop()
