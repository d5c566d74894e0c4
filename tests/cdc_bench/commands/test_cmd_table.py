"""``cdc-bench table`` end to end: Markdown, LaTeX and CSV from a real results folder."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plots"))
import plots_testdata as td  # noqa: E402

from cdc_bench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def results(tmp_path_factory, kodak_dir):
    return td.shared_results(tmp_path_factory, kodak_dir)


def _run(*args):
    return CliRunner().invoke(main, ["table", *map(str, args)])


def test_markdown(results):
    res = _run(results, "--anchor", "jpeg", "--metrics", "psnr")
    assert res.exit_code == 0, res.output
    rows = [line for line in res.stdout.splitlines() if line.startswith("|")]
    assert len(rows) == 3 and "webp" in rows[2]
    cell = rows[2].split("|")[2]
    assert float(cell.split()[0].rstrip("%")) < 0   # BD-rate of WebP against JPEG, in %
    assert re.search(r"-\d+\.\d% \[-\d+\.\d, -\d+\.\d\]", cell), cell   # with its paired bootstrap interval


def test_csv_matches_markdown(results):
    res = _run(results, "--anchor", "jpeg", "--format", "csv")
    assert res.exit_code == 0, res.output
    tidy = pd.read_csv(io.StringIO(res.stdout))
    assert set(tidy["metric"]) == {"psnr", "ms-ssim"} and set(tidy["codec"]) == {"webp"}
    md = _run(results, "--anchor", "jpeg", "--metrics", "psnr").stdout
    value = tidy.loc[tidy["metric"] == "psnr", "bd_rate_pct"].item()
    assert f"{value:+.1f}" in md


def test_latex_to_file(results, tmp_path):
    out = tmp_path / "t" / "bd.tex"
    res = _run(results, "--anchor", "jpeg", "--format", "latex", "--out", out)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "\\toprule" in text and "\\midrule" in text and "\\bottomrule" in text


def test_swapping_anchor_flips_the_sign(results):
    a = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--metrics", "psnr").stdout))
    b = pd.read_csv(io.StringIO(_run(results, "--anchor", "webp", "--format", "csv", "--metrics", "psnr").stdout))
    assert a["bd_metric"].item() == pytest.approx(-b["bd_metric"].item(), rel=0.05)
    assert a["bd_rate_pct"].item() < 0 < b["bd_rate_pct"].item()


def test_unknown_anchor_lists_curves(results):
    res = _run(results, "--anchor", "hevc")
    assert res.exit_code != 0
    assert "anchor 'hevc' not in the results of kodak; curves there: jpeg, webp" in res.output
