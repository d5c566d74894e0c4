"""The killable child process that gives Dask workers a per-task timeout."""

import math
import os
import signal
import subprocess
import sys
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


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])  # the watchdog; the exit handler
def test_a_child_does_not_outlive_its_killed_parent(tmp_path, signum):
    """A parent (a Dask worker) stopped mid-item, however: its child, busy with a 60 s item, ends within seconds
    instead of finishing an item nobody will read."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from cdc_bench.executors.isolated import IsolatedWorker\n"
        "w = IsolatedWorker()\n"
        "Path(sys.argv[1]).write_text(str(w.call(os.getpgid, 0)))\n"
        "w.call(time.sleep, 60)\n"), str(pid_file)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert parent.poll() is None and time.monotonic() < deadline, "the parent did not start its child"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        time.sleep(0.3)  # the child is in its 60 s item now
        os.kill(parent.pid, signum)
        parent.wait(30)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), f"the child {child} outlived its parent (stopped by {signal.Signals(signum).name})"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie is reaped by init; ours by nobody until the test ends)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
