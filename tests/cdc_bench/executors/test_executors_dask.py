"""The Dask executor on loopback: a local cluster of 2 process workers, a killed worker, a separate scheduler and
worker started as `dask scheduler` / `dask worker`; rows must equal the local executor's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cdc_bench.executors.dask import DaskExecutor, _remote, local_worker_specs
from cdc_bench.executors.local import InlineExecutor, TaskTimeout
from cdc_bench.codecs.plans import CodecPlan
from cdc_bench.sweep.client import plan_tasks, sweep
from cdc_bench.store.results import ResultsStore

import distributed  # noqa: E402,F401 - a required dependency: no skip


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(5)
    items = []
    for i in range(3):
        yy, xx = np.mgrid[0:192, 0:256]
        arr = np.stack([(xx * (c + 1) + yy) % 256 for c in range(3)], -1) + rng.integers(0, 30, (192, 256, 3))
        path = tmp_path / "imgs" / f"im{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)
        items.append((f"im{i}", path))
    return items


def _tasks(images, rates=(20, 80)):
    return plan_tasks([("d", images)], [CodecPlan("jpeg", {}, list(rates))], metrics=("psnr", "ms-ssim"))


def _rows(out):
    with ResultsStore(out, create=False) as store:
        return store.frame().set_index(["image", "quality"]).sort_index()


def _assert_same_rows(dask_out, local_out):
    a, b = _rows(dask_out), _rows(local_out)
    assert list(a.index) == list(b.index) and (a["status"] == "ok").all()
    assert (a["bpp"] == b["bpp"]).all() and (a["bytes"] == b["bytes"]).all()  # bpp exactly
    np.testing.assert_allclose(a["psnr"], b["psnr"], atol=1e-6)
    np.testing.assert_allclose(a["ms_ssim"], b["ms_ssim"], atol=1e-6)


@pytest.fixture
def local_rows(images, tmp_path):
    out = tmp_path / "local"
    sweep(_tasks(images), ResultsStore(out), InlineExecutor(), run_id="local", progress=False)
    return out


def test_local_cluster_rows_equal_the_local_executor_and_a_killed_worker_loses_nothing(images, tmp_path,
                                                                                        local_rows):
    out = tmp_path / "dask"
    tasks = _tasks(images)
    with DaskExecutor(workers=2, threads_per_worker=1) as ex:
        assert ex.info()["workers"] == 2 and ex.info()["scheduler"].startswith("tcp://127.0.0.1")
        pids = list(ex.client.run(os.getpid).values())
        killed = []

        def kill_one(row):  # the first row back: the other worker is busy with its task
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        summary = sweep(tasks, ResultsStore(out), ex, run_id="dask", progress=False, on_row=kill_one)
        # a task past --timeout is stopped on the worker and recorded as timeout (Dask itself cannot stop it)
        slow = sweep(tasks[:1], ResultsStore(tmp_path / "slow"), ex, run_id="t", timeout=0.001, progress=False)
        assert slow.failed == 1 and _rows(tmp_path / "slow")["status"].tolist() == ["timeout"]
    assert killed and summary.ok + summary.failed == len(tasks)
    frame = _rows(out)
    assert len(frame) == len(tasks) and frame.index.is_unique  # no row lost or duplicated
    if (frame["status"] == "env-error").any():  # allowed: recorded, and the next run retries it
        assert summary.failed and not (frame["status"] == "error").any()
        with DaskExecutor(workers=1, threads_per_worker=1) as ex:
            sweep(tasks, ResultsStore(out), ex, run_id="again", progress=False)
    _assert_same_rows(out, local_rows)


def test_the_isolated_call_stops_a_hung_task():
    assert isinstance(_remote(time.sleep, 5, None, 0.5, 1), TaskTimeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_separate_scheduler_and_worker_processes_get_the_image_bytes(images, tmp_path, local_rows, monkeypatch):
    """`dask scheduler` + `dask worker` on 127.0.0.1; the worker runs elsewhere, so only shipped bytes can work."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    elsewhere = tmp_path / "worker-cwd"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
           "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask_cli + ["--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
                              env=env, cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                       "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
                                       "--local-directory", str(elsewhere)],
                                      env=env, cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        monkeypatch.chdir(tmp_path)  # relative image paths: they exist for the client only
        relative = [(name, Path(path).relative_to(tmp_path)) for name, path in images]
        assert not (elsewhere / relative[0][1]).exists()
        out = tmp_path / "dask"
        with DaskExecutor(address, threads_per_worker=1) as ex:
            ex.client.wait_for_workers(1, timeout=60)
            assert ex.info()["scheduler"] == address
            summary = sweep(_tasks(relative), ResultsStore(out), ex, run_id="remote", progress=False)
        assert summary.ok == 6, _rows(out)["error"].tolist()
        _assert_same_rows(out, local_rows)
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_one_worker_per_gpu_is_pinned_by_cuda_visible_devices():
    specs = local_worker_specs(4, gpus=2, threads=3)
    envs = [spec["options"]["env"] for spec in specs.values()]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1"]
    assert all(e["CDC_BENCH_PINNED_GPU"] == "1" and e["OMP_NUM_THREADS"] == "3" for e in envs)
    assert all("CUDA_VISIBLE_DEVICES" not in s["options"]["env"] for s in local_worker_specs(2).values())


def test_an_unreachable_scheduler_is_a_clear_error():
    from cdc_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        DaskExecutor(f"tcp://127.0.0.1:{_free_port()}", connect_timeout=2).start()


def test_scheduler_without_dashboard_prints_no_dashboard_link(capsys):
    """`dask scheduler --no-dashboard` still lists a dashboard service; the run must not print a dead link."""
    from cdc_bench.commands.run import _announce

    port = _free_port()
    env = {**os.environ, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    proc = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                             "--port", str(port), "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        pool = DaskExecutor(f"tcp://127.0.0.1:{port}", 1).start()
        try:
            _announce(pool)
            assert pool.client.scheduler_info().get("services", {}).get("dashboard")   # listed, yet not served
            assert pool.dashboard_link() is None
        finally:
            pool.close()
        err = capsys.readouterr().err
        assert "dashboard: none (the scheduler serves no dashboard pages: started with --no-dashboard" in err
        assert "http://" not in err
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
def test_a_worker_with_other_number_changing_code_is_refused_before_any_task(images, tmp_path):
    """A real LocalCluster of 2 process workers; one reports another torch (its record patched in that process)."""
    from distributed import Client, LocalCluster

    from cdc_bench import provenance
    from cdc_bench.errors import ConfigError

    def other_torch():  # runs in the worker: the version record it will report from now on
        from cdc_bench import provenance

        real = provenance.package_versions
        provenance.package_versions = lambda names=provenance.PACKAGES: {**real(names), "torch": "0.0-other"}

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        good, bad = sorted(client.nthreads())
        client.run(other_torch, workers=[bad])
        with pytest.raises(ConfigError, match=f"Dask worker {bad} runs other code .*torch: here [^,]+, there "
                                              "0.0-other") as err:
            DaskExecutor(cluster.scheduler_address, threads_per_worker=1).start()
        assert good not in str(err.value)
        assert not client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks) > 0)  # no task sent
        client.retire_workers([bad])
        with DaskExecutor(cluster.scheduler_address, threads_per_worker=1) as ex:
            summary = sweep(_tasks(images[:1], rates=(50,)), ResultsStore(tmp_path / "out"), ex, run_id="r",
                            progress=False)
            versions = ex.info()["worker_versions"]
        assert summary.ok == 1 and list(versions) == [good]
        assert versions[good]["packages"]["torch"] == provenance.package_versions(("torch",))["torch"]
        assert {"libjpeg_turbo", "libheif"} <= set(versions[good]["libraries"]) and versions[good]["source_sha256"]


def test_a_worker_running_a_modified_copy_on_its_pythonpath_is_refused(tmp_path, kill_group):
    """`dask worker` with PYTHONPATH holding a copy of cdc_bench with one file changed (same version number)."""
    import shutil

    from cdc_bench.errors import ConfigError
    import cdc_bench

    copy = tmp_path / "copy"
    shutil.copytree(Path(cdc_bench.__file__).parent, copy / "cdc_bench", ignore=shutil.ignore_patterns("__pycache__"))
    metrics = copy / "cdc_bench" / "metrics" / "distortion.py"
    metrics.write_text(metrics.read_text() + "\n# a modified line\n")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(copy)}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                       "1", "--host", "127.0.0.1", "--no-dashboard"], env=env, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        ex = DaskExecutor(address, threads_per_worker=1, connect_timeout=60)
        from distributed import Client

        with Client(address, timeout="60s") as probe:
            probe.wait_for_workers(1, timeout=60)
        with pytest.raises(ConfigError, match="runs other code .*source_sha256: here [0-9a-f]+, there [0-9a-f]+"):
            ex.start()
    finally:
        kill_group(*procs)


def test_a_scheduler_address_that_is_not_one_is_a_clear_error():
    import gc

    from distributed import Client

    from cdc_bench.errors import ConfigError

    def clients() -> set[int]:
        return {id(o) for o in gc.get_objects() if isinstance(o, Client)}

    gc.collect()
    before = clients()   # other tests' clients may linger; only this call's matter
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at nonsense") as failed:
        DaskExecutor("nonsense", connect_timeout=2).start()
    # No half-built Client is left for a later garbage collection to close: run inside the next cluster's start,
    # its __del__ deadlocked the next test (seen as a hang in a local-cluster start).
    assert failed.value.__context__ is None
    assert not clients() - before


def test_when_every_worker_is_gone_the_client_says_so_and_stops(images, tmp_path):
    from cdc_bench.errors import EnvironmentFault

    out = tmp_path / "out"
    tasks = _tasks(images, rates=tuple(range(5, 96, 5)))  # 57 items: far more than the 4 in flight
    with DaskExecutor(workers=1, threads_per_worker=1, no_workers_timeout=3) as ex:
        def retire_all(row):  # after the first row, the cluster loses its only worker for good
            if ex.cluster.workers:
                ex.cluster.scale(0)

        start = time.monotonic()
        store = ResultsStore(out)
        with pytest.raises(EnvironmentFault, match="every Dask worker is gone and none joined for 3 s"):
            sweep(tasks, store, ex, run_id="r", progress=False, on_row=retire_all)
        store.close()
        assert time.monotonic() - start < 120
    assert 1 <= len(_rows(out)) < len(tasks)  # what was stored is kept


def test_a_rerun_adding_a_metric_ships_only_the_reconstructions_in_flight(images, tmp_path, monkeypatch):
    """--save-recon, then a metric added under Dask: each saved reconstruction is read just before its task is
    submitted, so at most the window of tasks in flight (4 per worker thread) holds one; values as a fresh run's."""
    from cdc_bench.sweep import worker

    def plan(metrics, save):   # 12 items, more than the window of 4
        return plan_tasks([("d", images)], [CodecPlan("jpeg", {}, [10, 40, 70, 95])], metrics=metrics,
                          save_recon=save)

    tasks = plan(("psnr",), True)
    out = tmp_path / "dask"
    sweep(tasks, ResultsStore(out), InlineExecutor(), run_id="a", progress=False)
    in_flight, peak = [0], [0]
    ship = worker.with_recon_bytes

    def counted(task):
        sent = ship(task)
        if sent.recon_png is not None:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        return sent

    monkeypatch.setattr(worker, "with_recon_bytes", counted)
    added = plan(("psnr", "psnr-y"), False)
    with DaskExecutor(workers=1, threads_per_worker=1) as ex:
        run = ex.run

        def finished(fn, todo, timeout=None):
            assert todo and all(t.recon_path and t.recon_png is None for t in todo)   # paths in the plan
            for pair in run(fn, todo, timeout):
                in_flight[0] -= 1
                yield pair

        monkeypatch.setattr(ex, "run", finished)
        summary = sweep(added, ResultsStore(out), ex, run_id="b", progress=False)
    # the window of 4, plus the one just finished: the executor tops the window up before handing its result back
    assert summary.ok == len(added) == 12 and 0 < peak[0] <= 4 + 1
    sweep(added, ResultsStore(tmp_path / "fresh"), InlineExecutor(), run_id="fresh", progress=False)
    np.testing.assert_array_equal(_rows(out)["psnr_y"], _rows(tmp_path / "fresh")["psnr_y"])


def _isolated_children(parents: set[int]) -> set[int]:
    """Pids of the isolated task processes (cdc_bench.executors.isolated) whose parent is one of ``parents``."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if stat[0] != "Z" and int(stat[1]) in parents and b"cdc_bench.executors.isolated" in cmdline:
            found.add(int(entry.name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_when_the_workers_of_a_cluster_are_stopped_the_client_says_so_and_no_child_is_left(images, tmp_path, signum,
                                                                                          kill_group):
    """`dask worker` killed (or stopped) mid-sweep, every one of them: the client stops after no_workers_timeout
    with the rows it has, no item is stored as error or timeout, and no isolated child outlives its worker."""
    from cdc_bench.errors import EnvironmentFault

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
           "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    quiet = dict(env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], **quiet)]
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                       "1", "--nworkers", "2", "--host", "127.0.0.1", "--no-dashboard",
                                       "--local-directory", str(tmp_path)], **quiet))
        out = tmp_path / "out"
        tasks = _tasks(images, rates=tuple(range(5, 96, 5)))  # 57 items: far more than the 8 in flight
        with DaskExecutor(address, threads_per_worker=1, no_workers_timeout=3) as ex:
            ex.client.wait_for_workers(2, timeout=60)
            workers = set(ex.client.run(os.getpid).values())
            children: set[int] = set()

            def stop_the_workers(row):
                if not children:
                    children.update(_isolated_children(workers))
                    os.killpg(procs[1].pid, signum)

            start = time.monotonic()
            store = ResultsStore(out)
            with pytest.raises(EnvironmentFault, match="every Dask worker is gone and none joined for 3 s"):
                sweep(tasks, store, ex, run_id="r", progress=False, on_row=stop_the_workers)
            store.close()
            assert time.monotonic() - start < 90
        assert children  # each worker had started its child
        deadline = time.monotonic() + 10
        while _isolated_children(workers | {1}) & children and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _isolated_children(workers | {1}) & children, "an isolated child outlived its worker"
        frame = _rows(out)
        assert 1 <= len(frame) < len(tasks) and not frame["status"].isin(["error", "timeout"]).any()
    finally:
        kill_group(*procs)


def test_the_sync_cancel_race_record_is_dropped_and_nothing_else():
    """distributed's sync() cancel callback can raise NameError on Ctrl-C (a race in distributed); tornado would log
    it with a traceback after the run's one line. The filter drops that record alone."""
    import logging
    import sys

    from cdc_bench.executors.dask import SYNC_CANCEL_RACE

    def record(message, error):
        try:
            raise error
        except Exception:  # noqa: BLE001
            info = sys.exc_info()
        return logging.LogRecord("tornado.application", logging.ERROR, __file__, 1, message, (), info)

    race = "cannot access free variable 'future' where it is not associated with a value in enclosing scope"
    cancel = "Exception in callback functools.partial(<function sync.<locals>.cancel at 0x7f31b595ca40>)"
    assert not SYNC_CANCEL_RACE.filter(record(cancel, NameError(race)))
    assert SYNC_CANCEL_RACE.filter(record(cancel, ValueError(race)))             # another error: kept
    assert SYNC_CANCEL_RACE.filter(record("Exception in callback other()", NameError(race)))
    assert SYNC_CANCEL_RACE.filter(logging.LogRecord("x", logging.ERROR, __file__, 1, cancel, (), None))
