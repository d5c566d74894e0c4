"""`cdc-bench run` and `export` as a user runs them: real JPEG sweeps, bad names, a SIGKILL and a resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from cdc_bench.cli import main


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        yy, xx = np.mgrid[0:96, 0:128]
        arr = np.stack([(xx * (c + 1) + yy) % 256 for c in range(3)], -1) + rng.integers(0, 20, (96, 128, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(root / f"im{i}.png")
    Image.fromarray(rng.integers(0, 256, (5, 5), dtype=np.uint8)).save(root / "grey.png")
    (root / "broken.png").write_bytes((root / "im0.png").read_bytes()[:200])
    return root


def test_run_then_export(folder, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "jpeg", "-q", "20,80", "-o",
                                       "jpeg.subsampling=444", "--out", str(out), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 5 * 2
    assert (frame.loc[frame["image"] == "broken", "status"] == "error").all()
    grey = frame[frame["image"] == "grey"]
    assert (grey["status"] == "ok").all() and grey["warnings"].str.contains("grayscale").all()
    assert all(json.loads(o)["subsampling"] == "444" for o in frame["options"])
    ok = frame[frame["status"] == "ok"].groupby("quality")[["bpp", "psnr"]].mean()
    assert ok.loc[80, "psnr"] > ok.loc[20, "psnr"] and ok.loc[80, "bpp"] > ok.loc[20, "bpp"]

    for fmt, name in (("csv", "results.csv"), ("json", "results.json")):
        res = CliRunner().invoke(main, ["export", str(out), "--format", fmt])
        assert res.exit_code == 0, res.output
        assert (out / "export" / name).exists()
    res = CliRunner().invoke(main, ["export", str(out), "--format", "compressai-json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(open(res.output.split()[0]).read())
    assert payload["name"] == "jpeg" and len(payload["results"]["bpp"]) == 2
    assert payload["results"]["bpp"] == sorted(payload["results"]["bpp"])
    assert payload["results"]["psnr-rgb"][1] == pytest.approx(ok.loc[80, "psnr"])


@pytest.mark.parametrize("args, needle", [
    (["-c", "jpgg"], "Did you mean jpeg"),
    (["-c", "jpeg", "-o", "jpeg.qualty=3"], "valid options"),
    (["-c", "jpeg", "-o", "webp.method=3"], "not among --codecs"),
    (["-d", "kodakk"], "kodak"),
    (["-m", "psnrr"], "psnr"),
])
def test_unknown_names_exit_2_and_list_valid_ones(folder, tmp_path, args, needle):
    base = ["run", "-d", f"folder:{folder}", "--out", str(tmp_path / "o"), "--quiet"]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_sigkill_mid_sweep_then_resume_computes_only_missing_rows(folder, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cdc_bench.cli", "run", "-d", f"folder:{folder}", "-c", "jpeg,webp",
           "--out", str(out), "--workers", "1", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    db = out / "results.sqlite"
    deadline = time.time() + 120
    count = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    count = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                count = 0
            if count >= 20:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        before = dict(conn.execute("SELECT dataset||image||codec||options||quality, finished_at FROM results"))
    total = 5 * 19 * 2
    assert 20 <= len(before) < total

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT dataset||image||codec||options||quality, finished_at FROM results").fetchall()
    assert len(rows) == total == len(set(k for k, _ in rows))
    after = dict(rows)
    assert all(after[k] == v for k, v in before.items())
    import re

    ok, failed, skipped = map(int, re.search(r"(\d+) items measured, (\d+) failed, (\d+) already in the store",
                                             " ".join(done.stdout.split())).groups())
    assert skipped == len(before) and ok + failed == total - len(before)
