"""Run task functions in a long-lived child process that can be killed: a per-task timeout where nothing else has one.

Dask (like any thread-based worker) cannot stop a running task, and one hung decode must not hold a cluster slot
forever. So a Dask worker hands each task to its own child process (``python -m cdc_bench.executors.isolated``) over a
pipe and waits at most ``timeout`` seconds for the answer; past that the child is killed and the task recorded
as ``timeout``; a child that dies mid-task is reported as :class:`~cdc_bench.executors.local.WorkerDied`. The child
lives on between tasks, so its caches (codec instances with loaded weights, the last decoded images) work as in
a pebble worker; only a timeout or a crash costs a fresh child (and a weight reload). The child is started with
``subprocess``, not ``multiprocessing``, because Dask's worker processes are daemons, which may not fork pool
children. Messages are length-prefixed pickles between this process and its own child; nothing else reads them.

A child never outlives its worker: it runs in a session of its own (a Ctrl-C to the terminal's process group
reaches only the parent, who decides), the parent kills every child it started when it exits, and a watchdog thread
in the child ends it (and anything it started) within :data:`ORPHAN_CHECK_S` once its parent is gone, even one
killed with SIGKILL. The item it was running is then simply not answered: the client stores nothing for it, and
the next run runs it again.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Callable

_HEADER = struct.Struct("!Q")
_READY = _HEADER.pack(2 ** 64 - 1)  # the child's first message: imports done, waiting for tasks
#: how long a child may take to start (import torch and the codecs); not counted in any item's timeout
STARTUP_S = 600
#: how often a child checks that its parent is still alive (an orphan ends itself within about this long)
ORPHAN_CHECK_S = 0.5
_LIVE: "weakref.WeakSet[IsolatedWorker]" = weakref.WeakSet()  # every worker with a child, stopped at exit


class IsolatedWorker:
    """One child process; :meth:`call` runs ``fn(arg)`` there with a time limit."""

    def __init__(self, threads: int = 1, env: dict[str, str] | None = None, python: str | None = None):
        self.threads = max(1, threads)
        self.env = env
        self.python = python or sys.executable  # another venv's interpreter (e.g. HiFiC's TensorFlow venv)
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, **(self.env or {})}
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(name, str(self.threads))
        env["CDC_BENCH_THREADS"] = str(self.threads)
        env["CDC_BENCH_ISOLATED_PARENT"] = str(os.getpid())
        self.proc = subprocess.Popen([self.python, "-m", "cdc_bench.executors.isolated"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, start_new_session=True)
        _LIVE.add(self)
        # The child says it is ready once its imports are done: its start-up is not the first item's time.
        from .local import WorkerDied

        try:
            if self._read(_HEADER.size, time.monotonic() + STARTUP_S) != _READY:
                raise EOFError
        except (TimeoutError, EOFError, OSError):
            code = self.stop()
            raise WorkerDied(f"the task's worker process did not start within {STARTUP_S} s (exit code {code})") \
                from None
        return self.proc

    def call(self, fn: Callable[[Any], Any], arg: Any, timeout: float | None = None) -> Any:
        """The value of ``fn(arg)``; its exception is re-raised here. TaskTimeout / WorkerDied as described above."""
        from .local import TaskTimeout, WorkerDied

        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        payload = pickle.dumps((fn, arg), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            self.proc.stdin.flush()
            deadline = None if timeout is None else time.monotonic() + timeout
            size = _HEADER.unpack(self._read(_HEADER.size, deadline))[0]
            ok, value = pickle.loads(self._read(size, deadline))
        except TimeoutError:
            self.stop()
            raise TaskTimeout(f"no result after {timeout:g} s; the task's process was stopped") from None
        except (EOFError, BrokenPipeError, OSError):
            code = self.stop()
            raise WorkerDied(f"the task's worker process died (exit code {code})") from None
        if not ok:
            raise value
        return value

    def _read(self, n: int, deadline: float | None) -> bytes:
        out = bytearray()
        fd = self.proc.stdout.fileno()
        while len(out) < n:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, min(n - len(out), 1 << 20))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    def stop(self) -> int | None:
        """Kill the child (and anything it started); return its exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        return proc.wait()


def stop_all() -> None:
    """Kill every child this process started (their items unanswered); runs when this process exits."""
    for worker in list(_LIVE):
        worker.stop()


atexit.register(stop_all)
_LOCAL = threading.local()


def call_isolated(fn: Callable[[Any], Any], arg: Any, timeout: float | None = None, threads: int = 1) -> Any:
    """``fn(arg)`` in this thread's child (started on first use, restarted after a timeout or a crash).

    One child per worker thread: a Dask worker with several threads runs that many tasks side by side.
    """
    worker = getattr(_LOCAL, "worker", None)
    if worker is None:
        worker = _LOCAL.worker = IsolatedWorker(threads)
    return worker.call(fn, arg, timeout)


def _end_when_orphaned(parent: int) -> None:
    """The child's watchdog: once its parent is gone (killed, even by SIGKILL), end this child's whole session now
    rather than finish an item nobody will read (and hold its memory, GPU and cores meanwhile)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_S)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="orphan-watchdog", daemon=True).start()


def _child() -> None:
    """The child's loop: read (fn, arg), answer (True, value) or (False, exception); stop at end of input."""
    parent = int(os.environ.get("CDC_BENCH_ISOLATED_PARENT", "0"))
    if parent:
        _end_when_orphaned(parent)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the answer pipe
    sys.stdout = sys.stderr
    from .local import init_worker

    init_worker(int(os.environ.get("CDC_BENCH_THREADS", "1")))  # as a local pool's worker: threads, kept memory
    try:
        import torch  # noqa: F401 - the task functions' imports (torch, the codecs, the metrics), before
        import cdc_bench.metrics  # noqa: F401 - the first item's clock starts
        import cdc_bench.sweep.batching  # noqa: F401
    except ImportError:
        pass
    out.write(_READY)
    out.flush()
    stdin = sys.stdin.buffer
    while True:
        head = stdin.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return
        message = stdin.read(_HEADER.unpack(head)[0])
        try:
            fn, arg = pickle.loads(message)
            answer = (True, fn(arg))
        except Exception as err:  # noqa: BLE001 - handed back to the caller, who decides
            answer = (False, err)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # noqa: BLE001 - an unpicklable exception: send its text
            data = pickle.dumps((False, RuntimeError(f"{type(err).__name__}: {err}")))
        out.write(_HEADER.pack(len(data)) + data)
        out.flush()


if __name__ == "__main__":
    _child()
