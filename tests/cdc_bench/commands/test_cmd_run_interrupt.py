"""Ctrl-C / SIGTERM during a sweep, through a real subprocess and a real signal: every finished row is kept, the
workers stop within seconds, the manifest says interrupted, exit 130 / 143, and the rerun completes the rest with
no row lost or duplicated."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CODECS = "jpeg,webp"
FEW = ["-q", "10,30,50,70,90"]  # the fault tests' rate points: 60 items, enough for faults after 3 and 20 rows
QUALITIES = 19  # the default points of each (the test of SIGKILL in test_cmd_run.py counts them the same way)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(d / f"im{i}.png")
    return d


def _rows(db) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if marker.encode() + b"=" in (entry / "environ").read_bytes() and \
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _cmd(folder, out, extra):
    return [sys.executable, "-m", "cdc_bench.cli", "run", "-d", f"folder:{folder}", "-c", CODECS, "-m", "psnr",
            "--out", str(out), "--quiet", *extra]


@pytest.mark.parametrize("signum, group, extra", [
    (signal.SIGINT, True, ["--workers", "2"]),      # Ctrl-C in a terminal: the whole process group
    (signal.SIGTERM, False, ["--workers", "2"]),    # a job scheduler's stop: the parent only
    (signal.SIGINT, True, ["--workers", "0"]),      # inline, in this process
    (signal.SIGTERM, False, ["--executor", "dask", "--workers", "2"]),  # a local Dask cluster
    (signal.SIGINT, True, ["--executor", "dask", "--workers", "2"]),
])
def test_a_stopped_sweep_keeps_its_rows_says_so_and_resumes(folder, tmp_path, signum, group, extra):
    out = tmp_path / "out"
    marker = f"CDC_TEST_STOP_{os.getpid()}_{time.time_ns()}"  # inherited by every process the run starts
    proc = subprocess.Popen(_cmd(folder, out, extra), env={**os.environ, "PYTHONUNBUFFERED": "1", marker: "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    db, deadline = out / "results.sqlite", time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (db.exists() and _rows(db) >= 5):
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be stopped"
    stopped_at = time.time()
    os.killpg(proc.pid, signum) if group else proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the stopped sweep did not exit within 30 s")
    took = time.time() - stopped_at
    assert proc.returncode == 128 + signum, err
    saved = re.search(r"(\d+) rows saved in .*; rerun the same command to resume", err)
    assert saved, err
    # Ctrl-C to the group reaches a local Dask cluster's worker processes too: they must stay silent
    for noise in ("Aborted!", "Traceback", "KeyboardInterrupt", "BrokenPipeError", "IOLoop is closed"):
        assert noise not in err, err
    assert err.strip().splitlines()[-1].startswith(f"Interrupted ({signal.Signals(signum).name}: "), err
    with sqlite3.connect(db) as conn:
        keys = [r[0] for r in conn.execute("SELECT dataset||image||codec||options||quality FROM results")]
        (manifest,) = [json.loads(m) for (m,) in conn.execute("SELECT manifest FROM runs")]
    assert int(saved.group(1)) == len(keys) >= 5
    with sqlite3.connect(db) as conn:  # an item cut off mid-way is not stored as a failure
        assert {s for (s,) in conn.execute("SELECT status FROM results")} == {"ok"}
    deadline = time.time() + 10
    while _processes_with(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert not _processes_with(marker), "a worker or an isolated child outlived the stopped run"
    assert manifest["status"] == "interrupted" and manifest["ended_at"]
    assert manifest["interrupted"] == {"reason": signal.Signals(signum).name, "rows_saved": len(keys)}
    assert took < 30

    rerun = subprocess.run(_cmd(folder, out, extra), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(db) as conn:
        after = [r[0] for r in conn.execute("SELECT dataset||image||codec||options||quality FROM results")]
        statuses = {s for (s,) in conn.execute("SELECT status FROM results")}
    assert len(after) == len(set(after)) == 6 * QUALITIES * 2 and set(keys) <= set(after)
    assert statuses == {"ok"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_dask(tmp_path, workers: int = 2) -> tuple[str, subprocess.Popen, subprocess.Popen]:
    """`dask scheduler` and `dask worker` (``workers`` processes) on loopback, each in a process group of its own;
    returns once the workers have joined."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
           "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    quiet = dict(env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], **quiet)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                               "--nworkers", str(workers), "--host", "127.0.0.1", "--no-dashboard",
                               "--local-directory", str(tmp_path)], **quiet)
    with Client(address, timeout="60s") as probe:
        probe.wait_for_workers(workers, timeout=60)
    return address, scheduler, worker


def _wait_for_rows(proc, db, n: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (db.exists() and _rows(db) >= n):
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before the fault"


def _keys_and_manifests(db):
    with sqlite3.connect(db) as conn:
        keys = [r[0] for r in conn.execute("SELECT dataset||image||codec||options||quality FROM results")]
        statuses = {s for (s,) in conn.execute("SELECT status FROM results")}
        manifests = [json.loads(m) for (m,) in conn.execute("SELECT manifest FROM runs ORDER BY started_at")]
    return keys, statuses, manifests


def test_a_killed_scheduler_ends_the_run_in_one_line_and_a_new_one_resumes(folder, tmp_path, kill_group):
    """kill -9 of an external scheduler after >= 3 rows: the client says so within SCHEDULER_LOST_S, stores no
    failure for the items Dask cancelled, marks the run failed with the reason; a new scheduler resumes it."""
    from cdc_bench.executors.dask import SCHEDULER_LOST_S

    out, db = tmp_path / "out", tmp_path / "out" / "results.sqlite"
    address, scheduler, worker = _start_dask(tmp_path)
    try:
        proc = subprocess.Popen(_cmd(folder, out, ["--scheduler", address, *FEW]), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        _wait_for_rows(proc, db, 3)
        scheduler.kill()
        try:
            _, err = proc.communicate(timeout=SCHEDULER_LOST_S + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the client did not notice its lost scheduler within {SCHEDULER_LOST_S + 30} s")
    finally:
        kill_group(scheduler, worker)
    assert proc.returncode != 0
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "IOLoop is closed" not in err, err
    assert len(lines) == 2 and lines[0].startswith("Dask: ") and lines[1].startswith(
        f"Error: lost the Dask scheduler at {address}"), err
    keys, statuses, (manifest,) = _keys_and_manifests(db)
    assert len(keys) >= 3 and statuses == {"ok"}  # items in flight were cancelled, not failed: nothing stored
    assert manifest["status"] == "failed" and manifest["ended_at"]
    assert manifest["interrupted"]["rows_saved"] == len(keys)
    assert "lost the Dask scheduler" in manifest["interrupted"]["reason"]

    address, scheduler, worker = _start_dask(tmp_path, workers=1)
    try:
        rerun = subprocess.run(_cmd(folder, out, ["--scheduler", address, *FEW]), capture_output=True, text=True,
                               timeout=300)
    finally:
        kill_group(scheduler, worker)
    assert rerun.returncode == 0, rerun.stderr
    after, statuses, _ = _keys_and_manifests(db)
    assert len(after) == len(set(after)) == 6 * 5 * 2 and set(keys) <= set(after)
    assert statuses == {"ok"}


#: a full disk, injected: once CDC_TEST_FULL_AFTER reconstructions are written, every file opened for writing
#: under CDC_TEST_FULL_DIR fails with ENOSPC (SQLite's own writes are not Python's to fail; a real full disk,
#: a 2 MB tmpfs as root, fails them too, and the run ends the same way)
_FULL_DISK_HOOK = '''
import builtins, errno, io, os
_dir, _after = os.environ["CDC_TEST_FULL_DIR"], int(os.environ["CDC_TEST_FULL_AFTER"])
_real, _written = io.open, [0]

def _open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wax+"):
        path = os.path.abspath(os.fspath(file))
        if path.startswith(_dir + os.sep):
            if _written[0] >= _after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            _written[0] += os.sep + "recon" + os.sep in path
    return _real(file, mode, *args, **kwargs)

io.open = builtins.open = _open
'''


def test_a_full_disk_under_dask_with_save_recon_keeps_the_rows_and_ends_in_one_line(folder, tmp_path):
    out, db = tmp_path / "out", tmp_path / "out" / "results.sqlite"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_FULL_DISK_HOOK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "CDC_TEST_FULL_DIR": str(out), "CDC_TEST_FULL_AFTER": "20"}
    extra = ["--executor", "dask", "--workers", "2", "--save-recon", *FEW]
    run = subprocess.run(_cmd(folder, out, extra), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, timeout=300)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "IOLoop is closed" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if not line.startswith("Dask: ")]
    assert len(errors) == 1 and errors[0].startswith("Error: "), run.stderr
    assert f"the disk holding {out} is full" in errors[0] and "cannot write the reconstruction" in errors[0]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    keys, statuses, (manifest,) = _keys_and_manifests(db)
    assert len(keys) == 20 and statuses == {"ok"}  # each row stored after its reconstruction: no row without one
    assert len(list((out / "recon").rglob("*.png"))) == 20 and not list(out.rglob("*.tmp"))
    assert manifest["status"] == "failed" and "is full" in manifest["interrupted"]["reason"]
    assert manifest["interrupted"]["rows_saved"] == 20

    rerun = subprocess.run(_cmd(folder, out, extra), capture_output=True, text=True, timeout=300)  # space freed
    assert rerun.returncode == 0, rerun.stderr
    after, statuses, _ = _keys_and_manifests(db)
    assert len(after) == len(set(after)) == 6 * 5 * 2 and set(keys) <= set(after) and statuses == {"ok"}
