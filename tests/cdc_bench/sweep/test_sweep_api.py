"""``cdc_bench.run`` / ``cdc_bench.load``: the library call that ``cdc-bench run`` is a shell over."""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cdc_bench
from cdc_bench.cli import main
from cdc_bench.errors import ConfigError
from cdc_bench.store.key import KEY


@pytest.fixture
def one_image(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


def _keys(out) -> list[tuple]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        return sorted(conn.execute(f"SELECT {', '.join(KEY)} FROM results").fetchall())


def test_library_rows_are_keyed_byte_for_byte_as_the_cli_keys_them(one_image, tmp_path):
    results = cdc_bench.run([f"folder:{one_image}"], ["jpeg"], qualities=[10, 50], out=tmp_path / "py",
                            workers=0)
    cli = CliRunner().invoke(main, ["run", "-d", f"folder:{one_image}", "-c", "jpeg", "-q", "10,50",
                                    "--out", str(tmp_path / "cli"), "-j", "0", "--quiet"])
    assert cli.exit_code == 0, cli.output
    assert _keys(tmp_path / "py") == _keys(tmp_path / "cli") and len(_keys(tmp_path / "cli")) == 2
    assert '"subsampling"' in _keys(tmp_path / "py")[0][3]          # every default option is in the key
    assert results.outcome.summary.ok == 2 and len(results.rows) == 2
    means = results.means()
    assert list(means["quality"]) and {"psnr_lo", "psnr_hi"} <= set(means.columns)
    again = cdc_bench.run([f"folder:{one_image}"], ["jpeg"], qualities="10,50", out=tmp_path / "py", workers=0)
    assert again.outcome.summary.skipped == 2 and again.outcome.summary.ok == 0    # resumed: nothing re-run


def test_options_as_a_mapping_equal_the_command_line_form(one_image, tmp_path):
    a = cdc_bench.run([f"folder:{one_image}"], ["jpeg"], options={"jpeg": {"qualities": [30], "subsampling": 444}},
                      out=tmp_path / "a", workers=0)
    b = cdc_bench.run([f"folder:{one_image}"], ["jpeg"], options=["jpeg.qualities=30", "jpeg.subsampling=444"],
                      out=tmp_path / "b", workers=0)
    assert _keys(tmp_path / "a") == _keys(tmp_path / "b")
    assert float(a.rows["bpp"].iloc[0]) == float(b.rows["bpp"].iloc[0])
    table = cdc_bench.load(tmp_path / "a", tmp_path / "b").rows
    assert len(table) == 2 and set(table["results"]) == {"a", "b"}


def test_bad_values_are_refused_before_any_work(one_image, tmp_path):
    for kwargs, text in (({"workers": -1}, "run in this process"), ({"timeout": 0}, "seconds"), ({"match": "x"}, "match"),
                         ({"qualities": [500]}, "jpeg")):
        with pytest.raises(ConfigError, match=text):
            cdc_bench.run([f"folder:{one_image}"], ["jpeg"], out=tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_bd_table_from_python(one_image, tmp_path):
    results = cdc_bench.run([f"folder:{one_image}"], ["jpeg", "webp"], qualities=[20, 50, 80], out=tmp_path / "r",
                            workers=0)
    table = results.bd_table(anchor="jpeg", metrics=["psnr"])
    webp = table[(table["label"] == "webp") & (table["metric"] == "psnr")] if "label" in table else table
    assert len(webp) >= 1 and np.isfinite(webp["bd_rate_pct"]).any()


@pytest.mark.parametrize("kwargs, text", [
    ({"codecs": 5}, "codecs=5"),
    ({"datasets": None}, "datasets=None"),
    ({"metrics": ["psnr", None]}, "metrics="),
    ({"metrics": 5}, "metrics=5"),
    ({"options": 5}, "options=5"),
    ({"options": [3]}, "CODEC.KEY=VALUE"),
    ({"out": 123}, "out=123"),
    ({"batch": "2"}, "batch='2'"),
    ({"limit": "a"}, "limit='a'"),
    ({"limit": -1}, "limit=-1"),       # silently dropped the last image ([:-1])
    ({"limit": 0}, "limit=0"),         # silently meant every image
    ({"target_bpp": [float("nan")]}, "'nan'"),   # a list skipped the check and ran
    ({"target_bpp": (0.1, -1.0)}, "'-1.0'"),
    ({"qualities": []}, "names no rate point"),
])
def test_wrong_types_and_values_name_the_argument(one_image, tmp_path, kwargs, text):
    kwargs = {"datasets": [f"folder:{one_image}"], "codecs": ["jpeg"], "out": tmp_path / "x", **kwargs}
    with pytest.raises(ConfigError, match=re.escape(text)):
        cdc_bench.run(kwargs.pop("datasets"), kwargs.pop("codecs"), workers=0, **kwargs)
    assert not (tmp_path / "x").exists()


def test_a_single_target_number_is_one_target(one_image, tmp_path):
    outcome = cdc_bench.run([f"folder:{one_image}"], ["jpeg"], workers=0, out=tmp_path / "x", target_bpp=2,
                            metrics=["psnr"])
    assert {task.target_bpp for task in outcome.outcome.tasks} == {2.0}
