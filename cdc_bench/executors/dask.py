"""The Dask executor: a sweep on a cluster (``--scheduler tcp://HOST:8786``) or a local one (``--workers N``).

It implements :class:`cdc_bench.executors.local.Executor`, so the runner's sweep, store and progress bar are the same as
with the local pool. How it keeps the promises of the local pool:

* **The client is the only writer.** Workers get the task plus the image's bytes (no shared folder needed;
  ``shared_fs=True`` sends paths instead) and return the row and its artefacts; the client stores them.
* **Timeouts.** Dask cannot stop a running task, so each Dask worker runs its tasks in a child process of its own
  (:mod:`cdc_bench.executors.isolated`) and kills it past ``timeout``: the item is recorded as ``timeout``.
* **Weights once per worker.** That child lives on between tasks, so the runner's per-process codec cache keeps
  learned codecs' weights loaded; a worker reloads them only after a timeout or a crash.
* **Lost workers.** A worker that dies mid-task has its task rerun on another worker by the scheduler (up to
  Dask's ``allowed-failures``); past that the item is recorded as ``env-error`` and retried on the next run.
  A killed client loses nothing that was stored: the same command resumes from the store. When every worker is
  gone, the client says so and stops after ``no_workers_timeout`` (10 min). A lost scheduler (killed, or silent
  for :data:`SCHEDULER_LOST_S`) stops it with one line (:class:`~cdc_bench.errors.EnvironmentFault`); the items
  that were in flight are not stored (Dask cancelled them, they did not fail) and the next run runs them.
* **Same code everywhere.** Before a worker gets a task, its :func:`cdc_bench.provenance.code_record` must equal
  the client's (version, commit, source digest, number-changing packages); the manifest lists every worker's.
* **Timeouts are the item's own.** A worker's child reports ready after its imports, so its start-up is not
  counted in the first item's limit.
* **Memory.** At most 4 tasks per worker thread are in flight (the window widens as workers join), so the
  image bytes of a large dataset, or the saved reconstructions of a rerun that adds a metric, are never all
  held at once.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import ConfigError, EnvironmentFault

#: how often a waiting client asks whether any worker is left
CHECK_EVERY_S = 2.0
#: how long the client waits for an answer from the scheduler before it calls the scheduler lost
SCHEDULER_LOST_S = 30.0


def _remote(fn: Callable, task: Any, data: bytes | None, timeout: float | None, threads: int | None) -> Any:
    """Runs on a Dask worker: the task, with its image bytes, in this worker's killable child process.

    ``threads=None`` (a remote cluster): the worker's own cores shared among its task slots.
    """
    from .local import TaskTimeout, WorkerDied
    from .isolated import call_isolated

    if threads is None:
        threads = max(1, len(os.sched_getaffinity(0)) // _worker_slots())

    task = _on_this_worker(task, data)
    try:
        return call_isolated(fn, task, timeout, threads)
    except (TaskTimeout, WorkerDied) as err:
        return err


def _read_images(task: Any) -> Any:
    """The image bytes a worker needs: the task's file, or a list in task order for a batch (``--batch``)."""
    batch = getattr(task, "tasks", None)
    return [Path(t.path).read_bytes() for t in batch] if batch is not None else Path(task.path).read_bytes()


def _on_this_worker(task: Any, data: Any) -> Any:
    """The task with its shipped image bytes, on this worker's GPU when the worker is pinned to one."""
    batch = getattr(task, "tasks", None)
    if batch is not None:
        datas = data if data is not None else [None] * len(batch)
        return replace(task, tasks=tuple(_on_this_worker(t, d) for t, d in zip(batch, datas)))
    if data is not None:
        task = replace(task, image_data=data)
    if os.environ.get("CDC_BENCH_PINNED_GPU") and str(getattr(task, "device", "")).startswith("cuda"):
        task = replace(task, device="cuda")  # this worker sees exactly one GPU, as cuda:0
    return task


def local_worker_specs(n_workers: int, gpus: int = 0, threads: int = 1) -> dict[str, dict]:
    """SpecCluster worker specs: one process per worker; with ``gpus``, worker i sees only GPU i (mod gpus)."""
    from distributed import Nanny

    specs = {}
    for i in range(n_workers):
        env = {"OMP_NUM_THREADS": str(threads)}
        if gpus:
            env.update(CUDA_VISIBLE_DEVICES=str(i % gpus), CDC_BENCH_PINNED_GPU="1")
        specs[f"cdc-bench-{i}"] = {"cls": Nanny, "options": {"nthreads": 1, "env": env, "memory_limit": 0,
                                                             "silence_logs": logging.ERROR,
                                                             "preload": [__name__]}}  # dask_setup below
    return specs


def dask_setup(worker: Any) -> None:
    """Run by Dask in each worker process of a local cluster (its ``preload``): ignore Ctrl-C there.

    Ctrl-C in a terminal reaches the whole process group, these workers included; the client alone decides what
    it means (it stores what it has and closes the cluster), as with the local pool's workers. Left to
    themselves the workers would each print a KeyboardInterrupt traceback on the way down.
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class DaskExecutor:
    """Runs the runner's tasks on Dask; ``scheduler=None`` starts a local cluster of ``workers`` processes."""

    def __init__(self, scheduler: str | None = None, workers: int = 1, device: str = "cpu", shared_fs: bool = False,
                 threads_per_worker: int | None = None, dashboard: bool = True, connect_timeout: float = 30.0,
                 no_workers_timeout: float = 600.0):
        self.scheduler = scheduler
        self.workers = max(1, workers)
        self.device = device
        self.shared_fs = shared_fs
        cores = os.cpu_count() or 1
        # a local cluster shares this machine's cores; a remote worker divides its own (decided there)
        self.threads = threads_per_worker or (None if scheduler else max(1, cores // self.workers))
        self.dashboard = dashboard
        self.connect_timeout = connect_timeout
        self.no_workers_timeout = no_workers_timeout
        self._workers_gone_at: float | None = None
        self.client = None
        self.cluster = None
        self._slots_at, self._slots_cached = -1e9, self.workers
        self.worker_records: dict[str, dict] = {}  # address -> provenance.code_record(), checked equal to ours
        self.lost: str | None = None  # why the scheduler is lost, once it is: nothing more is asked of it
        self._address, self._n_workers = scheduler, self.workers  # what info() reports once it cannot ask

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "DaskExecutor":
        import dask
        from distributed import Client

        dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GB"})
        if logging.getLogger().level > logging.DEBUG:  # the local scheduler's chatter would bury the sweep's lines
            for name in ("distributed", "bokeh", "tornado"):
                logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("tornado.application").addFilter(SYNC_CANCEL_RACE)
        if self.scheduler:
            failure = None
            try:
                self.client = Client(self.scheduler, timeout=f"{self.connect_timeout}s")
            except (OSError, TimeoutError, ValueError, TypeError) as err:  # ValueError: not an address
                failure = (f"cannot reach the Dask scheduler at {self.scheduler} ({err}); start one with "
                           "`dask scheduler` and `dask worker ADDRESS`, or drop --scheduler")
            if failure is not None:
                # The half-built Client closes itself in __del__. Left to a later garbage collection, that can run
                # inside the next Client's loop-runner start (in a new thread's bootstrap) and deadlock on the
                # loop runner's lock: collect it now, here, where no such lock is held.
                gc.collect()
                raise ConfigError(failure)
        else:
            self.cluster = self._local_cluster()
            self.client = Client(self.cluster)
            self.client.wait_for_workers(self.workers, timeout=120)
        self.check_workers()
        self._address = self.client.scheduler.address
        return self

    def check_workers(self) -> None:
        """Refuse any worker whose code or number-changing packages differ from this client's
        (:func:`cdc_bench.provenance.code_record`), before it gets a task; remember every worker's record."""
        from ..provenance import code_record, record_differences

        mine = code_record()
        new = [w for w in self.client.scheduler_info(n_workers=-1).get("workers", {}) if w not in self.worker_records]
        if not new:
            return
        records = self.client.run(code_record, workers=new, on_error="return")
        for address in sorted(records):
            theirs = records[address]
            if isinstance(theirs, BaseException):
                self.close()
                raise ConfigError(f"Dask worker {address} cannot run this cdc-bench's code ({type(theirs).__name__}: "
                                  f"{theirs}); install the client's version there (an older cdc-bench?)")
            differences = record_differences(mine, theirs)
            if differences:
                self.close()
                raise ConfigError(f"Dask worker {address} runs other code than this client, so its numbers could "
                                  f"differ: {'; '.join(differences)}. Install the same cdc-bench checkout and "
                                  "packages on every worker, or stop that worker")
            self.worker_records[address] = theirs

    def _local_cluster(self):
        from distributed import Scheduler, SpecCluster

        gpus = _gpu_count() if self.device.startswith("cuda") else 0
        if gpus > 1:
            try:
                from dask_cuda import LocalCUDACluster

                self.workers = min(self.workers, gpus)
                return LocalCUDACluster(n_workers=self.workers, threads_per_worker=1,
                                        dashboard_address=":0" if self.dashboard else None)
            except ImportError:
                pass
        scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0" if self.dashboard else None,
                                                   "host": "127.0.0.1"}}
        return SpecCluster(workers=local_worker_specs(self.workers, gpus if gpus > 1 else 0, self.threads),
                           scheduler=scheduler, silence_logs=40)

    def close(self) -> None:
        """Close the client (and the local cluster). Dask's own logging is silenced meanwhile: stopping workers
        with tasks in flight makes its scheduler warn about lost results that no one will ask for."""
        levels = _quiet_distributed()
        try:
            if self.client is not None:
                try:  # no long goodbye to a scheduler that is gone
                    self.client.close(timeout=5 if self.lost else SCHEDULER_LOST_S)
                except Exception:  # noqa: BLE001 - a client that cannot say goodbye is closed all the same
                    pass
            if self.cluster is not None:
                self.cluster.close()
        finally:
            self.client = self.cluster = None
            if not self.lost:  # a lost client's reconnect thread may still log: keep it quiet
                for name, level in levels.items():
                    logging.getLogger(name).setLevel(level)

    def __enter__(self) -> "DaskExecutor":
        return self.start() if self.client is None else self

    def __exit__(self, *_) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """What the run manifest records."""
        if self.client is not None and not self.lost:
            try:
                self._n_workers = len(self.client.nthreads(callback_timeout=SCHEDULER_LOST_S))
            except Exception as err:  # noqa: BLE001 - the scheduler went away: report what was known
                self._lose(err)
        return {"executor": "dask", "scheduler": self._address, "workers": self._n_workers,
                "shared_fs": self.shared_fs, "worker_versions": dict(self.worker_records)}

    def _lose(self, err: BaseException | str) -> EnvironmentFault:
        """Mark the scheduler lost; the one-line error the run stops with."""
        if self.lost is None:
            self.lost = err if isinstance(err, str) else f"{type(err).__name__}: {err}".strip()
            _quiet_distributed()
        return EnvironmentFault(f"lost the Dask scheduler at {self._address} ({self.lost}); the rows stored so far "
                                "are kept: start it again and rerun the same command to resume")

    def _scheduler_answers(self) -> bool:
        """Whether the scheduler still answers, asked after a future failed: a result fetch cut off by a dying
        scheduler fails before the client itself notices (within :data:`SCHEDULER_LOST_S` either way)."""
        deadline = time.monotonic() + SCHEDULER_LOST_S
        while not self.lost and self.client.status == "running" and time.monotonic() < deadline:
            try:
                self.client.nthreads(callback_timeout=1.0)
                return True
            except Exception:  # noqa: BLE001 - no answer yet
                time.sleep(0.1)
        return False

    def _check_scheduler(self) -> None:
        """Raise once the client has lost its scheduler: Dask then cancels every future (reconnecting or not)."""
        if self.lost:
            raise self._lose(self.lost)
        if self.client is not None and self.client.status != "running":
            raise self._lose(f"the connection to it closed; client {self.client.status}")

    def _slots(self) -> int:
        """Task slots (worker threads) in the cluster, asked of the scheduler at most every 2 s."""
        now = time.monotonic()
        if now - self._slots_at > 2.0:
            nthreads = self.client.nthreads(callback_timeout=SCHEDULER_LOST_S)
            if set(nthreads) - set(self.worker_records):
                self.check_workers()  # a worker that joined later is checked before the window widens
            self._slots_cached = sum(nthreads.values()) or self.workers
            self._slots_at = now
        return self._slots_cached

    def dashboard_link(self) -> str | None:
        """The dashboard's address, only when its page answers: a scheduler started with ``--no-dashboard`` still
        lists a ``dashboard`` service (its HTTP server stays up for health checks), and its link leads to a 404."""
        import urllib.error
        import urllib.request

        if self.client is None:
            return None
        services = self.client.scheduler_info().get("services", {})
        if "dashboard" not in services:
            return None
        link = self.client.dashboard_link
        try:   # --no-dashboard (or no bokeh) keeps the HTTP server for health/metrics but answers 404 on the pages
            with urllib.request.urlopen(link, timeout=3):
                return link
        except (urllib.error.URLError, OSError, ValueError):   # HTTPError (404) included
            return None

    # -- the Executor protocol ------------------------------------------------------------------------------
    def run(self, fn, tasks: Iterable, timeout: float | None = None) -> Iterator[tuple[Any, Any]]:
        """Yield ``(task, result)`` as tasks finish; ``result`` is the exception when a task produced no result."""
        from .local import WorkerDied
        from ..sweep.worker import with_recon_bytes

        if self.client is None:
            self.start()
        pending = list(tasks)
        pending.reverse()  # pop() from the end keeps the planned order (an image's rate points together)
        futures: dict[Any, Any] = {}

        def submit_next() -> None:
            task = pending.pop()
            data = None if self.shared_fs else _read_images(task)
            # a saved reconstruction is read now, for the tasks in flight only
            sent = task if self.shared_fs else with_recon_bytes(task)
            future = self.client.submit(_remote, fn, sent, data, timeout, self.threads, pure=False,
                                        key=f"cdc-bench-{os.urandom(8).hex()}")
            futures[future] = task

        def top_up() -> None:  # workers that join later (queued SLURM jobs) widen the window
            while pending and len(futures) < 4 * max(1, self._slots()):
                submit_next()

        try:
            top_up()
            while futures:
                for future in self._finished(list(futures)):
                    try:
                        # a result lost with its worker would be awaited forever
                        result = future.result(timeout=self.no_workers_timeout)
                    except Exception as err:  # noqa: BLE001 - KilledWorker, lost data: the environment's fault
                        if not self._scheduler_answers():  # cancelled or cut off with it: not the item's fault
                            raise self._lose(err) from None
                        result = WorkerDied(f"Dask could not run the item ({type(err).__name__}: {err})")
                    task = futures.pop(future)
                    try:
                        top_up()
                    except Exception as err:  # noqa: BLE001 - the scheduler went away while it was asked
                        self._check_scheduler()
                        raise self._lose(err) from None
                    yield task, result
        finally:
            if not self.lost:
                try:
                    self.client.cancel(list(futures), force=True)
                except Exception:  # noqa: BLE001 - the scheduler is gone: nothing left to cancel
                    pass

    def _finished(self, futures: list) -> list:
        """Futures done so far, waiting for at least one; an :class:`EnvironmentFault` once the scheduler is lost
        or no worker has been left for ``no_workers_timeout`` seconds (the client would otherwise wait forever)."""
        from distributed import wait

        while True:
            self._check_scheduler()
            try:
                try:
                    return list(wait(futures, timeout=CHECK_EVERY_S, return_when="FIRST_COMPLETED").done)
                except TimeoutError:  # nothing finished yet: is anyone left to finish it?
                    workers = self.client.nthreads(callback_timeout=SCHEDULER_LOST_S)
            except Exception as err:  # noqa: BLE001 - a closed comm, a cancelled client: the scheduler is gone
                self._check_scheduler()
                raise self._lose(err) from None
            if workers:
                self._workers_gone_at = None
                continue
            now = time.monotonic()
            if self._workers_gone_at is None:
                self._workers_gone_at = now
                logging.getLogger(__name__).warning(
                    "no Dask worker is left; waiting up to %g s for one to join", self.no_workers_timeout)
            elif now - self._workers_gone_at > self.no_workers_timeout:
                raise EnvironmentFault(f"every Dask worker is gone and none joined for {self.no_workers_timeout:g} s; "
                                       "the rows stored so far are kept: start workers and rerun the same command")


class _SyncCancelRace(logging.Filter):
    """Drops one record: when Ctrl-C reaches the client inside ``distributed.utils.sync`` before that function has
    bound its ``future``, its ``cancel`` callback raises ``NameError`` and tornado logs it with a traceback (seen
    once in a full test run under load). Nothing is lost and nothing can be done about it; the run's own
    "Interrupted" line follows. Every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, NameError) and "'future'" in str(error)
                    and "sync.<locals>.cancel" in record.getMessage())


SYNC_CANCEL_RACE = _SyncCancelRace()


def _quiet_distributed() -> dict[str, int]:
    """Silence distributed's own logging; returns the levels it replaced. Once the scheduler is lost, the client's
    reconnect attempts and its closing would log errors and tracebacks ("Failed to reconnect", "IOLoop is
    closed") after the run's one line."""
    roots = ("distributed", "tornado", "asyncio")
    levels = {}
    for name in dict.fromkeys([*roots, *list(logging.root.manager.loggerDict)]):  # children with levels of their own
        if name.split(".")[0] in roots:
            logger = logging.getLogger(name)
            levels[name] = logger.level
            logger.setLevel(logging.CRITICAL + 1)
    return levels


def _worker_slots() -> int:
    try:
        from distributed import get_worker

        return max(1, get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return 1


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0
