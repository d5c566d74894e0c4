"""examples/slurm_dask.py on a real single-node SLURM cluster on loopback (Debian's slurm-wlm + munge).

The test starts munged (if none runs), slurmctld and slurmd with a configuration of its own, runs the example on
a small sweep through dask-jobqueue (two CPU-only jobs), cancels one job with ``scancel`` once rows are being
written, and checks that the rows equal a local pool's: none lost, none duplicated, same bytes and PSNR. Skipped
where the programs are missing or not run as root (CI installs them and runs this slow test: see .ci/run).
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")

pytestmark = [
    pytest.mark.slow,  # ~2.5 min on 2 cores; CI runs it on its own line (.ci/run)
    pytest.mark.skipif(any(shutil.which(p) is None and not Path(f"/usr/sbin/{p}").exists() for p in PROGRAMS),
                       reason="slurm-wlm and munge not installed (apt-get install slurm-wlm munge)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a loopback SLURM cluster is started as root here"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture
def slurm(tmp_path):
    pytest.importorskip("dask_jobqueue")
    base = tmp_path / "slurm"
    for sub in ("state", "spool", "log"):
        (base / sub).mkdir(parents=True)
    host = socket.gethostname()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2 ** 20 - 2048
    conf = base / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=loop", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"StateSaveLocation={base}/state", f"SlurmdSpoolDir={base}/spool",
        f"SlurmctldPidFile={base}/slurmctld.pid", f"SlurmdPidFile={base}/slurmd.pid",
        f"SlurmctldLogFile={base}/log/slurmctld.log", f"SlurmdLogFile={base}/log/slurmd.log",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "SchedulerType=sched/backfill", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core", "ReturnToService=2",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    env = dict(os.environ, SLURM_CONF=str(conf))
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        for folder in ("/run/munge", "/var/lib/munge", "/var/log/munge"):
            Path(folder).mkdir(parents=True, exist_ok=True)
            shutil.chown(folder, "munge", "munge")
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", f"{_program('munged')} --force"], check=True)
    subprocess.run([_program("slurmctld"), "-f", str(conf)], env=env, check=True)
    time.sleep(1)
    subprocess.run([_program("slurmd"), "-f", str(conf)], env=env, check=True)
    deadline = time.time() + 60
    while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout:
        assert time.time() < deadline, (base / "log" / "slurmd.log").read_text()[-2000:]
        time.sleep(1)
    yield env
    subprocess.run(["scancel", "--user", "root"], env=env)
    for pid_file in ("slurmd.pid", "slurmctld.pid"):
        pid = (base / pid_file).read_text().strip() if (base / pid_file).exists() else ""
        if pid:
            subprocess.run(["kill", pid])


def _images(folder: Path, n: int = 8) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        yy, xx = np.mgrid[0:96, 0:128]
        image = np.stack([(xx * (c + 1) + yy * (i + 1)) % 256 for c in range(3)], -1)
        image = image + rng.integers(0, 30, (96, 128, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"im{i}.png")


def _rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        return conn.execute("SELECT image, codec, quality, status, bytes, round(psnr, 9) FROM results "
                            "ORDER BY image, codec, quality").fetchall()


def test_example_survives_a_cancelled_job_and_matches_the_local_pool(slurm, tmp_path):
    images, out, local = tmp_path / "images", tmp_path / "slurm-out", tmp_path / "local-out"
    _images(images)
    sweep = ["-d", f"folder:{images}", "-c", "hevc", "-m", "psnr", "--quiet"]
    client = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "slurm_dask.py"), "--jobs", "2", "--gpus-per-job", "0",
         "--cores", "1", "--memory", "2GB", "--walltime", "00:20:00", "--interface", "lo", "--", *sweep,
         "--out", str(out)], env=slurm, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cancelled = None
    deadline = time.time() + 300
    while client.poll() is None and time.time() < deadline:
        if cancelled is None and (out / "results.sqlite").exists():
            try:
                measured = len(_rows(out))
            except sqlite3.OperationalError:
                measured = 0
            jobs = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], env=slurm, capture_output=True,
                                  text=True).stdout.split()
            if measured >= 2 and len(jobs) == 2:
                cancelled = jobs[0]
                subprocess.run(["scancel", cancelled], env=slurm, check=True)
        time.sleep(0.5)
    output = client.communicate(timeout=60)[0]
    assert client.returncode == 0, output[-4000:]
    assert cancelled is not None, "the sweep ended before a job could be cancelled mid-sweep"
    done = subprocess.run([str(Path(sys.executable).parent / "cdc-bench"), "run", *sweep, "--out", str(local),
                           "--workers", "2"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    slurm_rows, local_rows = _rows(out), _rows(local)
    assert len(slurm_rows) == len(set(r[:3] for r in slurm_rows)) == len(local_rows) > 0
    assert slurm_rows == local_rows
