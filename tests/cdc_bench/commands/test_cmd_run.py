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
    (["-c", "jpeg", "-o", "webp.method=3"], "not among the codecs given: jpeg"),
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


def _run(folder, out, *args):
    return CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "jpeg", "--out", str(out), "--workers", "0",
                                     "--quiet", *args])


def test_a_run_where_nothing_succeeds_prints_the_failures_and_exits_1(folder, tmp_path):
    out = tmp_path / "out"
    for f in folder.iterdir():
        if f.name != "broken.png":
            f.unlink()
    result = _run(folder, out, "-q", "20")
    assert result.exit_code == 1, result.output
    assert "KeyError" not in result.output and "Traceback" not in result.output
    assert "broken" in result.output and "No item succeeded" in result.output
    res = CliRunner().invoke(main, ["export", str(out), "--format", "compressai-json"])
    assert res.exit_code == 1 and "no successful results" in res.output and "KeyError" not in res.output


def test_the_protocol_is_part_of_the_key_and_a_new_metric_fills_in(folder, tmp_path):
    out = tmp_path / "out"
    assert _run(folder, out, "-q", "20", "-m", "psnr").exit_code == 0
    result = _run(folder, out, "-q", "20", "-m", "psnr", "--preprocess", "center-crop:64")
    assert "4 items measured, 1 failed, 0 already in the store" in " ".join(result.output.split())
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 10 and set(frame["preprocess"]) == {"none", "center-crop:64"}
    result = _run(folder, out, "-q", "20", "-m", "psnr,ms-ssim")
    assert "4 items measured, 0 failed, 1 already" in " ".join(result.output.split())  # broken.png: error, kept
    frame = pd.read_csv(out / "results.csv")
    ok = frame[(frame["status"] == "ok") & (frame["preprocess"] == "none")]
    # 96 x 128 images: MS-SSIM is undefined (NaN); the row says it was measured, so a rerun does not loop on it
    assert len(frame) == 10 and ok["measured"].str.contains("ms-ssim").all() and ok["psnr"].notna().all()
    result = _run(folder, out, "-q", "20", "-m", "psnr,ms-ssim")
    assert "0 items measured, 0 failed, 5 already" in " ".join(result.output.split())


def test_a_corrupt_results_folder_is_a_clear_error(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"garbage" * 1000)
    result = _run(folder, out, "-q", "20")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(out / "results.sqlite") in result.output and "corrupt" in result.output
    res = CliRunner().invoke(main, ["export", str(out)])
    assert res.exit_code == 1 and "corrupt" in res.output


def test_run_on_a_local_dask_cluster_records_the_executor(folder, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "jpeg", "-q", "20", "-m", "psnr",
                                       "--out", str(out), "--executor", "dask", "--workers", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Dask: 2 workers, local cluster at tcp://127.0.0.1" in result.output and "dashboard:" in result.output
    with sqlite3.connect(out / "results.sqlite") as conn:
        (manifest,) = conn.execute("SELECT manifest FROM runs").fetchone()
        statuses = dict(conn.execute("SELECT image, status FROM results"))
    settings = json.loads(manifest)["settings"]
    assert (settings["executor"], settings["workers"]) == ("dask", 2) and settings["scheduler"].startswith("tcp://")
    assert statuses == {"im0": "ok", "im1": "ok", "im2": "ok", "grey": "ok", "broken": "error"}


def test_bare_run_is_a_quick_real_demonstration_and_says_what_the_full_sweep_costs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "results" / "default" / "results.csv", dtype={"quality": str})
    assert len(frame) == 5 * 3 * 5 and (frame["status"] == "ok").all()
    assert set(frame["preprocess"]) == {"center-crop:256"} and set(frame["codec"]) == {"jpeg", "webp", "hevc"}
    for codec, group in frame.groupby("codec"):   # real curves: rate rises with every rate point
        means = group.groupby("quality")["bpp"].mean()
        assert means.nunique() == 5
    assert "A quick demonstration" in result.output
    assert "cdc-bench run --datasets kodak --codecs jpeg,webp,hevc" in result.output and " min here" in result.output


def test_the_run_summary_names_random_weights(folder, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "im0.png").write_bytes((folder / "im0.png").read_bytes())
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{one}", "-c", "cdc", "-o", "cdc.weights=random",
                                       "-o", "cdc.steps=1", "-q", "0.0032", "-m", "psnr",
                                       "--out", str(tmp_path / "o"), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "cdc [random weights]" in result.output


@pytest.mark.parametrize("args, needles", [
    (["-c", "jpeg", "-o", "jpeg.quality=50"], ["did you mean qualities?", "qualities (the rate points",
                                              "-o jpeg.qualities=A,B or -q A,B"]),
    (["-c", "cdc", "-o", "cdc.step=4"], ["-o cdc.step: did you mean steps?"]),
])
def test_option_mistakes_name_the_fix(folder, tmp_path, args, needles):
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "--out", str(tmp_path / "o"), "--quiet",
                                       *args])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert all(n in text for n in needles), text


def test_data_root_pointing_at_the_dataset_folder_itself_says_pass_its_parent(tmp_path):
    inner = tmp_path / "datasets" / "kodak"
    inner.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(inner / "kodim01.png")   # the user's images sit right here
    result = CliRunner().invoke(main, ["run", "-d", "kodak", "--data-root", str(inner), "-c", "jpeg",
                                       "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert f"--data-root {inner} is the kodak folder itself" in text
    assert f"--data-root {inner.parent}" in text and "kodak/kodak" not in text.split("Fix:")[1]


def test_cdc_without_weights_is_told_about_random_weights(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "empty-cache"))   # no CDC weight files anywhere
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "cdc", "--out", str(tmp_path / "o"),
                                       "--quiet"])
    assert result.exit_code != 0
    text = " ".join(result.output.replace("│", " ").split())
    assert "-o cdc.weights=random" in text and "random weights" in text
def test_a_dataset_given_twice_is_computed_once(folder, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "-d", f"folder:{folder},folder:{folder}", "-c", "jpeg", "-q", "50",
                                    "--out", str(out), "--workers", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "is given more than once; it is run once" in res.output
    from cdc_bench.store.results import ResultsStore

    with ResultsStore(out, create=False) as store:
        frame = store.frame()
        assert len(store.runs()[-1]["settings"]["datasets"]) == 1 and len(frame) == frame["image"].nunique()


@pytest.mark.parametrize("args, needle", [
    (["-q", ""], "-q '' names no rate point"),        # silently ran all 19 default points
    (["-q", " , "], "names no rate point"),           # claimed jpeg had no default rate points
    (["-q", "50", "-o", "jpeg.qualities="], "-o jpeg.qualities= names no rate point"),   # silently fell back to -q
    (["-q", "50", "-m", ""], "-m '' names no metric"),   # silently measured bpp alone
    (["-q", "50", "-m", ","], "-m ',' names no metric"),
])
def test_an_empty_rate_list_is_refused(folder, tmp_path, args, needle):
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "jpeg", "-j", "0", "--out", str(out),
                                       "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and not out.exists()


def test_out_may_not_be_the_dataset_folder(folder):
    before = sorted(p.name for p in folder.iterdir())
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "jpeg", "-q", "50", "-j", "0",
                                       "--out", str(folder), "--quiet"])
    assert result.exit_code != 0 and "is the folder of dataset" in result.output, result.output
    assert sorted(p.name for p in folder.iterdir()) == before   # nothing written among the originals
