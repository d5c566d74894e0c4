"""Hostile results stores and CSVs: every reader (table, plot, report, compare, export, ``cdc_bench.load``) refuses
a damaged value with one line naming the file, the row, the column and the fix, never a traceback."""

from __future__ import annotations

import io
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import cdc_bench
from cdc_bench.cli import main
from cdc_bench.errors import StoreError

QUALITIES = (10, 30, 60, 90)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A small real store: Pillow JPEG and WebP of one 64 px image, reconstructions saved as --save-recon does."""
    from cdc_bench.datasets.images import save_png
    from cdc_bench.metrics.distortion import psnr
    from cdc_bench.store.results import ResultsStore, recon_path_for

    root = tmp_path_factory.mktemp("hostile")
    yy, xx = np.mgrid[0:64, 0:64]
    image = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1) + np.random.default_rng(0).integers(0, 30, (64, 64, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    Image.fromarray(image).save(root / "im0.png")
    rows = []
    for codec, fmt in (("jpeg", "JPEG"), ("webp", "WEBP")):
        for q in QUALITIES:
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format=fmt, quality=q)
            recon = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            row = {"dataset": "folder:x", "image": "im0", "codec": codec, "options": "{}", "quality": str(q),
                   "preprocess": "none", "device": "cpu", "height": 64, "width": 64, "bytes": len(buf.getvalue()),
                   "bpp": 8 * len(buf.getvalue()) / 64 ** 2, "psnr": psnr(image, recon), "status": "ok",
                   "run_id": "r1"}
            rows.append(row)
            save_png(recon, recon_path_for(root / "out", row))
    with ResultsStore(root / "out") as store:
        store.start_run("r1", {"run_id": "r1", "started_at": "2026-01-01T00:00:00", "command": ["cdc-bench", "run"],
                               "git": {"commit": "0" * 40, "dirty": False}})
        store.put_rows(rows)
    return root


def _sql(*statements):
    def corrupt(db: Path) -> None:
        with sqlite3.connect(db) as conn:
            for statement in statements:
                conn.execute(statement)
    return corrupt


def _null_key(db: Path) -> None:
    """A store whose table was made by hand, without the NOT NULL of cdc-bench's schema, with a NULL image."""
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(results)")]
        conn.execute("ALTER TABLE results RENAME TO old")
        conn.execute(f"CREATE TABLE results ({', '.join(columns)})")
        conn.execute("INSERT INTO results SELECT * FROM old")
        conn.execute("DROP TABLE old")
        conn.execute("UPDATE results SET image = NULL WHERE codec = 'jpeg' AND quality = '90'")


def _not_sqlite(db: Path) -> None:
    for extra in db.parent.glob("results.sqlite-*"):
        extra.unlink()
    db.write_text("these are not the results you are looking for\n")


#: corruption -> (how, what the one line must say)
CORRUPTIONS = {
    "manifest not JSON": (_sql("UPDATE runs SET manifest = '{not json'"),
                          ["table runs", "run 'r1'", "is not JSON", "DELETE FROM runs WHERE rowid = 1"]),
    "manifest a list": (_sql("UPDATE runs SET manifest = '[1, 2]'"),
                        ["run 'r1'", "JSON array, not an object", "DELETE FROM runs"]),
    "manifest settings a string": (_sql("""UPDATE runs SET manifest = '{"settings": "x"}'"""),
                                   ["run 'r1'", "field settings is a JSON string, not object"]),
    "manifest dataset size text": (
        _sql("""UPDATE runs SET manifest = '{"settings": {"dataset_sizes": {"folder:x": "abc"}}}'"""),
        ["run 'r1'", "settings.dataset_sizes.folder:x is a JSON string, not a whole number"]),
    "manifest load peak text": (_sql("""UPDATE runs SET manifest = '{"load": {"peak_1min": "high"}}'"""),
                                ["run 'r1'", "field load.peak_1min is a JSON string, not a number"]),
    "text bpp": (_sql("UPDATE results SET bpp = 'abc' WHERE codec = 'jpeg' AND quality = '30'"),
                 ["table results", "row 2", "im0, jpeg, {}, 30", "bpp is 'abc', not a number",
                  "DELETE FROM results WHERE typeof(bpp)"]),
    "text psnr": (_sql("UPDATE results SET psnr = 'x' WHERE quality = '60'"),
                  ["psnr is 'x', not a number (2 rows like it)", "rerun the sweep"]),
    "options not JSON": (_sql("UPDATE results SET options = '{bad' WHERE codec = 'webp'"),
                         ["options is '{bad', not a JSON object", "DELETE FROM results WHERE rowid IN (5, 6, 7, 8)"]),
    "options a list": (_sql("UPDATE results SET options = '[1]' WHERE codec = 'webp' AND quality = '10'"),
                       ["options is '[1]', not a JSON object", "rowid IN (5)"]),
    "NULL image": (_null_key, ["row 4 (folder:x, NULL, jpeg", "image is NULL, not text"]),
    "text FID value": (_sql("INSERT INTO dataset_metrics (dataset, codec, options, quality, preprocess, device, "
                            "metric, protocol, value) VALUES ('folder:x', 'jpeg', '{}', '10', 'none', 'cpu', 'fid', "
                            "'fid256', 'abc')"),
                       ["table dataset_metrics", "value is 'abc', not a number"]),
    "not SQLite": (_not_sqlite, ["results.sqlite: cannot open the results store", "the file is corrupt"]),
}
COMMANDS = {
    "table": lambda out, root: ["table", out, "--anchor", "jpeg", "--no-ci"],
    "plot": lambda out, root: ["plot", out, "--no-ci", "--format", "png"],
    "report": lambda out, root: ["report", out, "--no-ci", "--original", root],
    "compare": lambda out, root: ["compare", out, "--image", "im0", "--bpp", "1", "--original", root / "im0.png",
                                  "--crop", "32", "--format", "png"],
    "export": lambda out, root: ["export", out],
    "export json": lambda out, root: ["export", out, "--format", "json"],
    "run (a rerun)": lambda out, root: ["run", "-d", f"folder:{root}", "-c", "jpeg", "-q", "10", "--workers", "0",
                                        "--out", out, "--quiet"],
}


def _copy(clean: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(clean, tmp_path / "c")
    return tmp_path / "c" / "out", tmp_path / "c"


def _invoke(args) -> "object":
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("command", COMMANDS)
def test_a_clean_store_works_in_every_reader(clean, tmp_path, command):
    out, root = _copy(clean, tmp_path)
    result = _invoke(COMMANDS[command](out, root))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_store_is_one_line_naming_file_row_column_and_fix(clean, tmp_path, command, corruption):
    out, root = _copy(clean, tmp_path)
    corrupt, expected = CORRUPTIONS[corruption]
    corrupt(out / "results.sqlite")
    result = _invoke(COMMANDS[command](out, root))
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and str(out / "results.sqlite") in errors[0], result.output
    for text in expected:
        assert text in errors[0], (text, errors[0])
    if command.startswith("run") and corruption != "not SQLite":   # refused before it writes its manifest
        with sqlite3.connect(out / "results.sqlite") as conn:
            assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_load_refuses_a_damaged_store(clean, tmp_path, corruption):
    out, _ = _copy(clean, tmp_path)
    assert len(cdc_bench.load(out).rows) == 2 * len(QUALITIES)
    corrupt, expected = CORRUPTIONS[corruption]
    corrupt(out / "results.sqlite")
    with pytest.raises(StoreError) as err:
        cdc_bench.load(out)
    assert all(text in str(err.value) for text in expected), str(err.value)


@pytest.mark.parametrize("column, value, expected", [
    ("psnr", "x", "line 4 (folder:x, im0, jpeg, {}, 60, none, cpu): psnr is 'x', not a number"),
    ("bpp", "abc", "line 4 (folder:x, im0, jpeg, {}, 60, none, cpu): bpp is 'abc', not a number"),
    ("options", "{bad", "line 4: options '{bad' are not a JSON object"),
])
def test_a_damaged_results_csv_names_its_line(clean, tmp_path, column, value, expected):
    from cdc_bench.analysis.inputs import load_results

    frame = cdc_bench.load(clean / "out").rows
    frame[column] = frame[column].astype(object)
    frame.loc[2, column] = value   # the third data row: line 4 of the file
    frame.to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(StoreError) as err:
        load_results(tmp_path / "results.csv")
    assert str(tmp_path / "results.csv") in str(err.value) and expected in str(err.value), str(err.value)
    assert "export the CSV again" in str(err.value)


def test_an_intact_results_csv_reads_as_numbers(clean, tmp_path):
    from cdc_bench.analysis.inputs import load_results

    rows = cdc_bench.load(clean / "out").rows
    rows.to_csv(tmp_path / "results.csv", index=False)
    loaded = load_results(tmp_path / "results.csv").frame
    assert pd.api.types.is_float_dtype(loaded["psnr"]) and np.allclose(loaded["psnr"], rows["psnr"])
