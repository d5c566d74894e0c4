import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdc_bench.errors import ConfigError, StoreError
from cdc_bench.store.key import ResultKey, file_stem as file_name, quality_text
from cdc_bench.store.results import ResultsStore, recon_path, recon_path_for

KEY5 = ("d", "a", "jpeg", "{}", "5", "none", "cpu")


def _row(image="a", quality="5", **extra):
    row = {"dataset": "d", "image": image, "codec": "jpeg", "options": "{}", "quality": quality,
           "preprocess": "none", "device": "cpu", "status": "ok", "bpp": 1.0, "psnr": 30.0}
    row.update(extra)
    return row


def test_rows_are_keyed_and_replaced_not_duplicated(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_row(_row(psnr=30.0))
    store.put_row(_row(psnr=31.0))
    store.put_row(_row(image="b"))
    frame = store.frame()
    assert len(frame) == 2
    assert frame.set_index("image").loc["a", "psnr"] == 31.0


def test_new_metric_columns_are_added_on_first_use(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_row(_row(lpips=0.25, note_text="x"))
    store.put_row(_row(image="b"))
    frame = store.frame().set_index("image")
    assert frame.loc["a", "lpips"] == 0.25 and pd.isna(frame.loc["b", "lpips"])
    with pytest.raises(ValueError, match="invalid column"):
        store.put_row(_row(**{"bad name; drop table": 1}))


def test_quality_stays_text_and_rate_is_its_number(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_rows([_row(quality="5"), _row(quality="0.5", image="b"), _row(quality="mse_3", image="c")])
    frame = store.frame().set_index("image")
    assert list(frame["quality"]) == ["5", "0.5", "mse_3"]  # "5" does not come back as 5.0
    assert frame.loc["a", "rate"] == 5.0 and frame.loc["b", "rate"] == 0.5 and pd.isna(frame.loc["c", "rate"])
    assert recon_path_for(tmp_path, frame.reset_index().iloc[0]) == recon_path(tmp_path, "d", "jpeg", "{}", "5", "a")


def test_preprocess_and_device_are_part_of_the_key(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_row(_row(psnr=30.0))
    store.put_row(_row(psnr=20.0, preprocess="center-crop:256"))
    store.put_row(_row(psnr=29.0, device="cuda:1"))
    frame = store.frame()
    assert len(frame) == 3 and set(frame["device"]) == {"cpu", "cuda"}
    assert set(store.finished_keys(("ok",))) == {KEY5, KEY5[:5] + ("center-crop:256", "cpu"), KEY5[:6] + ("cuda",)}


def test_an_ok_row_merges_and_a_failed_row_replaces(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_row(_row(lpips=0.25))
    store.put_row({k: v for k, v in _row(psnr=31.0).items() if k != "bpp"})  # a metric-only update
    row = store.frame().iloc[0]
    assert (row["lpips"], row["psnr"], row["bpp"]) == (0.25, 31.0, 1.0)
    store.put_row(_row(status="error", error="boom", psnr=None, bpp=None))
    row = store.frame().iloc[0]
    assert row["status"] == "error" and pd.isna(row["lpips"])  # no stale numbers on a failed row


def test_nan_never_reaches_the_key(tmp_path):
    store = ResultsStore(tmp_path)
    for bad in (float("nan"), float("inf"), "nan"):
        with pytest.raises(ConfigError):
            quality_text(bad)
        with pytest.raises(ConfigError):
            store.put_row(_row(quality=bad))
    for options in ('{"gamma": NaN}', '{"gamma": Infinity}', '{"gamma": -Infinity}'):
        with pytest.raises(ConfigError, match="not a finite number"):
            store.put_row(_row(options=options))
    store.put_row(_row(psnr=float("nan")))
    assert pd.isna(store.frame()["psnr"].iloc[0])


def test_reconstruction_names_are_injective():
    names = ["x y", "x_y", "x:y", "x/y", "..", "x_y~" + "0" * 10]
    paths = {recon_path("out", "d", "c", "{}", "5", name) for name in names}
    assert len(paths) == len(names)
    assert all(p.parent == recon_path("out", "d", "c", "{}", "5", "a").parent for p in paths)
    assert {file_name(q) for q in ("5", "5.0", "5 ", "5/")} == {"5", "5.0", file_name("5 "), file_name("5/")}
    assert len({file_name(q) for q in ("5", "5.0", "5 ", "5/")}) == 4
    # the protocol is in the path too; the default protocol keeps the earlier layout
    assert recon_path("o", "d", "c", "{}", "5", "a", preprocess="center-crop:256") != recon_path("o", "d", "c", "{}",
                                                                                                "5", "a")
    assert recon_path("o", "d", "c", "{}", "5", "a", device="cuda:0") == recon_path("o", "d", "c", "{}", "5", "a",
                                                                                    device="cuda")


def test_missing_key_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        ResultsStore(tmp_path).put_row({"dataset": "d", "status": "ok"})


def test_finished_keys_and_csv(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_rows([_row(), _row(image="b", status="error", error="boom")])
    assert store.finished_keys(("ok",)) == {KEY5}
    assert len(store.finished_keys()) == 2
    csv = pd.read_csv(store.write_csv())
    assert set(csv["image"]) == {"a", "b"} and list(tmp_path.glob(".*.tmp")) == []


def test_dataset_metrics_and_runs(tmp_path):
    store = ResultsStore(tmp_path)
    key = {"dataset": "d", "codec": "jpeg", "options": "{}", "quality": "5", "preprocess": "none", "device": "cpu",
           "metric": "fid", "protocol": "fid256"}
    store.put_dataset_metric({**key, "value": 3.0, "n_patches": 192})
    store.put_dataset_metric({**key, "value": 2.5, "n_patches": 192})
    frame = store.dataset_metrics_frame()
    assert len(frame) == 1 and frame["value"].iloc[0] == 2.5
    store.start_run("r1", {"run_id": "r1", "started_at": "t0"})
    store.end_run("r1", {"run_id": "r1", "started_at": "t0", "ended_at": "t1"})
    assert store.runs() == [{"run_id": "r1", "started_at": "t0", "ended_at": "t1"}]


def test_reading_a_folder_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cdc-bench run"):
        ResultsStore(tmp_path / "nothing", create=False)


def _writer(path, worker, n):
    store = ResultsStore(path)
    for i in range(n):
        store.put_row(_row(image=f"w{worker}-{i}", **{f"m{worker}": float(i)}))


def test_two_processes_write_one_store_without_loss(tmp_path):
    procs = [mp.get_context("spawn").Process(target=_writer, args=(tmp_path, w, 60)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    frame = ResultsStore(tmp_path).frame()
    assert len(frame) == 120 and frame["image"].is_unique
    assert {"m0", "m1"} <= set(frame.columns)


def test_keys_and_paths_are_stable():
    assert quality_text(5) == "5" and quality_text(0.0032) == "0.0032" and quality_text(5.0) == "5.0"
    key = ResultKey.of("d", "a", "c", "{}", 5, "none", "cuda:1")
    assert key == ResultKey.of("d", "a", "c", "{}", "5", "none", "cuda") and key.values()[4] == "5"
    assert key != ResultKey.of("d", "a", "c", "{}", 6, "none", "cuda")
    path = recon_path("out", "kodak", "compressai:mbt2018", '{"metric":"mse"}', "3", "kodim01")
    assert path.parts[:3] == ("out", "recon", "kodak") and path.name == "kodim01.png" and ":" not in str(path)


def test_features_round_trip(tmp_path):
    store = ResultsStore(tmp_path)
    feats, orig = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 3), np.float32)
    store.put_features(KEY5, "fid256", feats, "clean-fid", "abc", orig)
    assert store.feature_keys("fid256") == {KEY5} and store.feature_keys("clean") == set()
    got = store.load_features(KEY5, "fid256")
    np.testing.assert_array_equal(got["features"], feats)
    np.testing.assert_array_equal(got["original"], orig)
    assert got["original_sha1"] == got["stored_original_sha1"] == "abc"


# --- failures of the store itself, and old stores ------------------------------------------------------------

def test_a_corrupt_store_is_a_store_error_naming_the_path(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"this is not sqlite" * 100)
    for create in (True, False):
        with pytest.raises(StoreError, match="results.sqlite.*corrupt"):
            ResultsStore(tmp_path, create=create)


def test_a_full_disk_is_a_store_error_naming_the_path(tmp_path):
    store = ResultsStore(tmp_path)
    store._conn.execute("PRAGMA max_page_count = %d" % store._conn.execute("PRAGMA page_count").fetchone()[0])
    with pytest.raises(StoreError, match=r"results.sqlite.*disk is full"):
        store.put_rows([_row(image=f"i{i}", note="x" * 5000) for i in range(50)])


def test_a_read_only_open_never_writes(tmp_path):
    ResultsStore(tmp_path).put_row(_row())
    with ResultsStore(tmp_path, create=False) as store:
        assert len(store.frame()) == 1
        with pytest.raises(StoreError, match="read-only"):
            store.put_row(_row(image="b"))
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store._conn.execute("CREATE TABLE x (a)")


def test_readers_work_on_a_read_only_folder_holding_a_wal_store(tmp_path):
    """A read-only bind mount (root ignores chmod): no -shm/-wal can be created there, the readers still work."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs a mount namespace (unshare -m) to make a read-only folder")
    out = tmp_path / "ro"
    with ResultsStore(out) as store:
        store.put_row(_row())
        store.start_run("r1", {"run_id": "r1", "started_at": "t0"})
    conn = sqlite3.connect(out / "results.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert not (out / "results.sqlite-shm").exists()
    reader = tmp_path / "reader.py"
    reader.write_text("import sys\nfrom cdc_bench.store.results import ResultsStore\nfrom cdc_bench.errors import StoreError\n"
                      "s = ResultsStore(sys.argv[1], create=False)\n"
                      "print(len(s.frame()), len(s.runs()), len(s.dataset_metrics_frame()))\n"
                      "try:\n    ResultsStore(sys.argv[1]).put_row(dict(s.frame().iloc[0], image='b'))\n"
                      "except StoreError as err:\n    print(err)\n")
    script = (f"mount --bind {out} {out} && mount -o remount,bind,ro {out} && "
              f"! touch {out}/probe 2>/dev/null && {sys.executable} {reader} {out}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, done.stderr
    counts, writer = done.stdout.splitlines()
    assert counts.split() == ["1", "1", "0"]
    assert str(out / "results.sqlite") in writer and "not writable" in writer  # a writer gets a clear error


def test_a_store_from_before_the_protocol_key_is_migrated(tmp_path):
    """Version-0 stores (key without preprocess/device) keep every row; device comes from the run's manifest."""
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    conn.execute("CREATE TABLE results (dataset TEXT NOT NULL, image TEXT NOT NULL, codec TEXT NOT NULL, "
                 "options TEXT NOT NULL, quality TEXT NOT NULL, preprocess TEXT, bpp REAL, psnr REAL, "
                 "status TEXT NOT NULL, run_id TEXT, fid_patches REAL, "
                 "PRIMARY KEY (dataset, image, codec, options, quality))")
    conn.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at TEXT, ended_at TEXT, manifest TEXT)")
    conn.execute("INSERT INTO runs VALUES ('g', 't', 't', ?)", (json.dumps({"device": "cuda:0"}),))
    conn.executemany("INSERT INTO results VALUES (?, ?, 'jpeg', '{}', ?, ?, 1.0, 30.0, 'ok', ?, 8)",
                     [("d", "a", "5", "none", "g"), ("d", "b", "0.5", None, "x")])
    conn.commit()
    conn.close()
    with pytest.warns(UserWarning, match="upgraded"):
        store = ResultsStore(tmp_path)
    frame = store.frame().set_index("image")
    assert frame.loc["a", "device"] == "cuda" and frame.loc["b", "device"] == "cpu"
    assert frame.loc["b", "preprocess"] == "none" and frame.loc["b", "rate"] == 0.5
    assert frame["fid_patches"].isna().all()  # old FID features are not trusted: asking for FID recomputes them
    store.put_row(_row(image="a", psnr=1.0, device="cpu"))
    assert len(store.frame()) == 3


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    ResultsStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer cdc-bench"):
        ResultsStore(tmp_path)


def test_a_version_1_store_gets_integral_real_rate_points_as_integers(tmp_path):
    """Version 1 stored JPEG 2000's integral ratios as ``190.0``; version 2 as ``190`` (rows, dataset metrics,
    features and reconstruction folders), with every row and number kept."""
    import sqlite3

    store = ResultsStore(tmp_path)
    cdc = '{"steps":2,"weights":"released"}'
    store.put_rows([_row(codec="jpeg2000", quality="190.0", psnr=25.5), _row(codec="jpeg2000", quality="0.5"),
                    _row(codec="jpeg", quality="5", image="b"), _row(codec="cdc", options=cdc, quality="0.0032")])
    cdc_recon = store.recon_file(_row(codec="cdc", options=cdc, quality="0.0032"))
    cdc_recon.parent.mkdir(parents=True)
    cdc_recon.write_bytes(b"cdc")
    store.put_dataset_metric({"dataset": "d", "codec": "jpeg2000", "options": "{}", "quality": "190.0",
                              "preprocess": "none", "device": "cpu", "metric": "fid", "protocol": "fid256",
                              "value": 3.0})
    old = store.recon_file(_row(codec="jpeg2000", quality="190.0"))
    old.parent.mkdir(parents=True)
    old.write_bytes(b"png")
    store.close()
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.execute("PRAGMA user_version = 1")
    with pytest.warns(UserWarning, match="keys rewritten"):
        store = ResultsStore(tmp_path)
    frame = store.frame().set_index("quality")
    assert sorted(frame.index) == ["0.0032", "0.5", "190", "5"] and frame.loc["190", "psnr"] == 25.5
    assert frame.loc["0.0032", "options"] == '{"steps":2,"weights":"pretrained"}'
    assert store.get_recon(_row(codec="cdc", options=frame.loc["0.0032", "options"], quality="0.0032")) == b"cdc"
    assert frame.loc["190", "rate"] == 190.0
    assert list(store.dataset_metrics_frame()["quality"]) == ["190"]
    assert store.get_recon(_row(codec="jpeg2000", quality=190)) == b"png"
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
def test_the_one_file_stem_sanitiser_and_its_containment_check(tmp_path):
    from cdc_bench.errors import ConfigError
    from cdc_bench.store.key import inside, file_stem

    assert file_stem("kodak") == "kodak" and file_stem("5.0") == "5.0"
    hostile = ["..", ".", "../../x", "a/b", "a\\b", ".hidden", "", "x y", "x_y~0"]
    stems = [file_stem(t) for t in hostile]
    assert len(set(stems)) == len(stems) and all("/" not in s and s not in (".", "..") and s for s in stems)
    assert all(inside(tmp_path, s).parent == tmp_path for s in stems)
    assert inside(tmp_path, "a/b.png") == tmp_path / "a" / "b.png"
    with pytest.raises(ConfigError, match="outside"):
        inside(tmp_path / "out", "../x.png")


def test_a_results_file_that_is_a_folder_gets_the_right_hint(tmp_path):
    from cdc_bench.errors import StoreError
    from cdc_bench.store.results import DB_NAME

    (tmp_path / DB_NAME).mkdir()
    with pytest.raises(StoreError, match="is a folder, not a results file") as err:
        ResultsStore(tmp_path)
    assert "not writable" not in str(err.value)


def test_a_store_written_by_the_previous_release_keeps_every_row_and_number(tmp_path):
    """``fixtures/store-90349d5``: a real store written by main at 90349d5 (jpeg2000 at ratios 190 and 20, CDC on
    random weights, --save-recon), its CSV beside it. Opened now, it is migrated once: every row kept with the same
    numbers, rate points in their canonical text, every reconstruction still found."""
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "store-90349d5"
    shutil.copytree(fixture, tmp_path / "store")
    with sqlite3.connect(fixture / "results.sqlite") as conn:   # the numbers exactly as the old release stored them
        before = pd.read_sql_query("SELECT * FROM results", conn)
    with pytest.warns(UserWarning, match="keys rewritten"):
        store = ResultsStore(tmp_path / "store")
    after = store.frame()
    assert len(after) == len(before) == 6
    assert sorted(after["quality"]) == sorted(["190", "190", "20", "20", "0.0032", "0.0032"])
    merged = before.assign(quality=before["quality"].astype(str).str.replace(r"\.0$", "", regex=True)).merge(
        after, on=["dataset", "image", "codec", "quality"], suffixes=("_old", "_new"))
    assert len(merged) == 6
    for column in ("bpp", "psnr", "ms_ssim", "bytes"):
        old, new = (pd.to_numeric(merged[f"{column}{side}"]).to_numpy(float) for side in ("_old", "_new"))
        assert np.array_equal(old, new, equal_nan=True), column
    assert all(store.get_recon(row) for _, row in after.iterrows())
    store.close()
    assert ResultsStore(tmp_path / "store").frame()["quality"].tolist() == after["quality"].tolist()  # once


def test_each_reader_refuses_a_damaged_value_naming_table_row_column_and_fix(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.put_rows([_row(image="a", bpp=0.5), _row(image="b", bpp=0.7)])
        store.start_run("r1", {"run_id": "r1", "started_at": "2026"})
    db = tmp_path / "results.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE results SET bpp = X'00' WHERE image = 'b'")   # bytes in a number column
    with ResultsStore(tmp_path, create=False) as store:
        with pytest.raises(StoreError, match=r"table results, row 2 \(d, b, jpeg, .*\): bpp is b'\\x00', not a "
                                             r"number; .*delete the row and rerun .*DELETE FROM results WHERE"):
            store.frame()
        with pytest.raises(StoreError, match="bpp is"):
            store.check()
        assert store.runs()[0]["run_id"] == "r1"   # the other tables are intact
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE results SET bpp = 0.7 WHERE image = 'b'")
        conn.execute("""UPDATE runs SET manifest = '{"git": [1]}'""")
    with ResultsStore(tmp_path, create=False) as store:
        assert list(store.frame()["bpp"]) == [0.5, 0.7]
        with pytest.raises(StoreError, match=r"table runs, row 1 \(run 'r1'\): the manifest field git is a JSON "
                                             r"array, not object; .*DELETE FROM runs WHERE rowid = 1"):
            store.runs()


def test_the_suggested_delete_removes_exactly_the_damaged_rows(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.put_rows([_row(image=i, psnr=30.0) for i in "abc"])
    db = tmp_path / "results.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE results SET psnr = 'x' WHERE image != 'b'")
    with ResultsStore(tmp_path, create=False) as store, pytest.raises(StoreError) as err:
        store.frame()
    assert "(2 rows like it)" in str(err.value)
    statement = str(err.value).split('"')[-2]
    with sqlite3.connect(db) as conn:
        conn.execute(statement)
    with ResultsStore(tmp_path, create=False) as store:
        assert list(store.frame()["image"]) == ["b"]


def test_a_sqlite_file_that_is_no_results_store_is_one_line(tmp_path):
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.execute("CREATE TABLE notes (x)")
    with ResultsStore(tmp_path, create=False) as store, pytest.raises(StoreError, match=r"has no table results: "
                                                                      r"this is not a results store.*move it away"):
        store.frame()
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.execute("CREATE TABLE results (dataset, image, codec, options, quality, bpp)")
    with ResultsStore(tmp_path, create=False) as store, pytest.raises(StoreError, match="has no column status"):
        store.frame()


def test_a_version_0_store_still_reads_without_migrating(tmp_path):
    """Read-only, a store from before the protocol key is not migrated: its NULL preprocess and absent device read
    as ``none`` and ``cpu``, not as damage."""
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.execute("CREATE TABLE results (dataset TEXT NOT NULL, image TEXT NOT NULL, codec TEXT NOT NULL, "
                     "options TEXT NOT NULL, quality TEXT NOT NULL, preprocess TEXT, bpp REAL, psnr REAL, "
                     "status TEXT NOT NULL)")
        conn.execute("INSERT INTO results VALUES ('d', 'a', 'jpeg', '{}', '5', NULL, 1.0, 30.0, 'ok')")
    with ResultsStore(tmp_path, create=False) as store:
        assert store.frame()["bpp"].tolist() == [1.0]
