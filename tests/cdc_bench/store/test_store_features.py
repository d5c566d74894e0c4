"""Damaged FID feature blobs: every reader refuses with one line naming the row and the ``DELETE`` that fixes it,
and a rerun after that ``DELETE`` measures the pair again and gives the original numbers back."""

from __future__ import annotations

import io
import re
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cdc_bench.cli import main
from cdc_bench.errors import StoreError
from cdc_bench.store.results import ResultsStore

KEY = ("d", "a", "jpeg", "{}", "5", "none", "cpu")


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


GOOD = np.arange(12, dtype=np.float32).reshape(3, 4)
#: how a blob is damaged -> what the one line must say
DAMAGE = {
    "truncated": (_npy(GOOD)[:-7], "is not a NumPy array"),
    "garbage": (b"not an npy file at all", "is not a NumPy array"),
    "text": ("abc", "is str, not bytes"),
    "one-dimensional": (_npy(np.zeros(12, np.float32)), "float32 array of shape (12,), not N x D float32"),
    "float64": (_npy(GOOD.astype(np.float64)), "float64 array of shape (3, 4)"),
    "NaN": (_npy(np.where(GOOD > 10, np.nan, GOOD).astype(np.float32)), "holds 1 NaN or infinite values"),
}


def _store(tmp_path) -> ResultsStore:
    store = ResultsStore(tmp_path)
    store.put_features(KEY, "clean", GOOD, "test", "sha", GOOD + 1)
    store.put_features(KEY[:4] + ("9",) + KEY[5:], "clean", GOOD, "test", "sha", GOOD + 1)
    return store


def _apply_fix(message: str, db) -> None:
    sql, = re.findall(r'sqlite3 \S+ "([^"]+)"', message)
    with sqlite3.connect(db) as conn:
        conn.executescript(sql)


@pytest.mark.parametrize("table", ["features", "original_features"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_blob_is_refused_naming_its_row_and_the_fix(tmp_path, table, damage):
    store = _store(tmp_path)
    blob, says = DAMAGE[damage]
    with sqlite3.connect(store.path) as conn:   # the row of KEY's reconstruction, or of its original
        rowid, = conn.execute(f"SELECT min(rowid) FROM {table}").fetchone()
        conn.execute(f"UPDATE {table} SET data = ? WHERE rowid = ?", (blob, rowid))
    with pytest.raises(StoreError) as err:
        store.load_features(KEY, "clean")
    message = str(err.value)
    assert f"table {table}, row {rowid}" in message and says in message and "\n" not in message
    assert "rerun the sweep with the same -m fid/kid" in message
    _apply_fix(message, store.path)
    assert store.load_features(KEY, "clean") is None            # gone, so a rerun measures it again
    if table == "original_features":   # the image's other reconstruction goes with its original
        assert store.feature_keys("clean") == set()
    else:
        assert store.load_features(KEY[:4] + ("9",) + KEY[5:], "clean") is not None


def test_a_row_count_the_n_column_disagrees_with_is_refused(tmp_path):
    store = _store(tmp_path)
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE features SET n = 5 WHERE rowid = 1")
    with pytest.raises(StoreError, match=r"has 3 rows where its n column says 5"):
        store.load_features(KEY, "clean")


@pytest.fixture()
def fid_sweep(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in "ab":
        smooth = np.cumsum(rng.integers(-6, 7, (48, 64, 3)), axis=1) + 128
        Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
    args = ["run", "-d", f"folder:{folder}", "-c", "jpeg", "-q", "20,80", "-m", "psnr,fid", "--fid-protocol",
            "clean", "--workers", "0", "--out", str(tmp_path / "res")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return tmp_path / "res", args


def test_export_and_a_rerun_refuse_damaged_features_and_the_fix_gives_the_numbers_back(fid_sweep):
    out, args = fid_sweep
    before = ResultsStore(out, create=False).dataset_metrics_frame().set_index("quality")["value"]
    db = out / "results.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE features SET data = substr(data, 1, 40) WHERE rowid = 2")
    res = CliRunner().invoke(main, ["export", str(out), "--format", "csv", "--fid-bootstrap", "10"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "table features, row 2" in res.output and "is not a NumPy array" in res.output
    res = CliRunner().invoke(main, args)   # the rerun recomputes FID from the stored features
    assert res.exit_code != 0 and "table features, row 2" in res.output, res.output
    manifest = ResultsStore(out, create=False).runs()[-1]
    assert manifest["status"] == "failed" and "table features, row 2" in manifest["interrupted"]["reason"]
    _apply_fix(res.output.replace("\n", " "), db)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "1 items measured" in res.output   # only the item whose features were deleted
    after = ResultsStore(out, create=False).dataset_metrics_frame().set_index("quality")["value"]
    assert after.to_dict() == before.to_dict()
