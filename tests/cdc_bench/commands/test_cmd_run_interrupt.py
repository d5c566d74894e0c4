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

import numpy as np
import pytest
from PIL import Image

CODECS = "jpeg,webp"
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
    proc = subprocess.Popen(_cmd(folder, out, extra), env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
    if "dask" not in extra or not group:
        # Ctrl-C to the group also reaches a local Dask cluster's nanny processes, which print their own
        # KeyboardInterrupt tracebacks (distributed's, not ours): known, left for later; the rest holds there too
        assert "Aborted!" not in err and "Traceback" not in err, err
    with sqlite3.connect(db) as conn:
        keys = [r[0] for r in conn.execute("SELECT dataset||image||codec||options||quality FROM results")]
        (manifest,) = [json.loads(m) for (m,) in conn.execute("SELECT manifest FROM runs")]
    assert int(saved.group(1)) == len(keys) >= 5
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
