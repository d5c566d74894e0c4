"""``cdc-bench table`` end to end: Markdown, LaTeX and CSV from a real results folder."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from click.testing import CliRunner


from cdc_bench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def results(td, tmp_path_factory, kodak_dir):
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
    assert res.exit_code == 2   # bad input: a ConfigError, reported by the CLI without a traceback
    assert "anchor 'hevc' not in the results of kodak; curves there: jpeg, webp" in res.output


def test_interval_containing_zero_is_marked_and_several_folders(results, tmp_path):
    import shutil

    other = tmp_path / "again"
    shutil.copytree(results, other)
    res = _run(results, other, "--anchor", f"jpeg (results={results.name})", "--metrics", "psnr",
               "--resamples", "200")
    assert res.exit_code == 0, res.output
    rows = {line.split("|")[1].strip(): line for line in res.stdout.splitlines() if line.startswith("|")}
    same = rows["jpeg (results=again)"]   # the same JPEG rows from a second folder: no difference at all
    assert "+0.0% [+0.0, +0.0] °" in same
    assert "°: the interval contains 0" in res.stdout
    assert "°" not in rows[f"webp (results={results.name})"].split("|")[2]   # WebP's saving is not noise
    assert "95% paired bootstrap interval over 2 images (200 resamples, seed 0" in res.stdout


def test_csv_carries_intervals_and_no_ci_drops_them(results):
    tidy = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--metrics", "psnr").stdout))
    row = tidy.iloc[0]
    assert row["bd_rate_lo"] <= row["bd_rate_pct"] <= row["bd_rate_hi"] and row["ci_resamples"] == 1000
    plain = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--no-ci").stdout))
    assert "bd_rate_lo" not in plain.columns


def test_bpp_range_is_used_and_said(results):
    full = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--metrics", "psnr",
                                        "--no-ci").stdout))
    part = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--metrics", "psnr",
                                        "--no-ci", "--bpp-range", "0.5,1.5").stdout))
    assert part["bpp_range"].item() == "0.5-1.5"
    assert part["rate_overlap"].item() == pytest.approx(1.0)   # both curves cover the whole window
    assert part["bd_rate_pct"].item() != pytest.approx(full["bd_rate_pct"].item())
    md = _run(results, "--anchor", "jpeg", "--metrics", "psnr", "--bpp-range", "0.5,1.5").stdout
    assert "BD computed over 0.5-1.5 bpp (--bpp-range)" in md
    bad = _run(results, "--anchor", "jpeg", "--bpp-range", "2,1")
    assert bad.exit_code != 0 and "LO must be less than HI" in bad.output


def test_per_image_bd_rate_and_its_figure(results, tmp_path):
    res = _run(results, "--anchor", "jpeg", "--metrics", "psnr", "--per-image", "--figure", tmp_path / "wins")
    assert res.exit_code == 0, res.output
    assert "kodim01" in res.stdout and "kodim23" in res.stdout
    assert "kodak, psnr: webp needs fewer bits than jpeg on 2 of 2 images" in res.output
    from PIL import Image

    with Image.open(tmp_path / "wins_kodak_psnr.png") as img:
        assert img.size[0] == 990   # 3.3 in at 300 dpi
    tidy = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--metrics", "psnr", "--per-image",
                                        "--format", "csv").stdout))
    assert len(tidy) == 2 and (tidy["bd_rate_pct"] < 0).all()


def test_fid_cells_carry_protocol_and_patch_count(td, results, tmp_path):
    import shutil

    copy = tmp_path / "res"
    shutil.copytree(results, copy)
    td.add_dataset_metrics(copy)
    res = _run(copy, "--anchor", "jpeg", "--metrics", "fid")
    assert res.exit_code == 0, res.output
    assert "FID: protocol fid256, 96 patches; UNRELIABLE: fewer than 2048 patches" in res.stdout
    assert "†1" in [line for line in res.stdout.splitlines() if line.startswith("|")][2]


def test_ms_ssim_convention_is_db_in_table_and_report_and_printed(results, tmp_path):
    """One store, one MS-SSIM BD-rate: `table` and `report` both use dB by default and say so."""
    csv = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--metrics", "ms-ssim",
                                       "--no-ci").stdout))
    db = csv["bd_rate_pct"].item()
    assert csv["scale"].item() == "dB"
    linear = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--metrics", "ms-ssim",
                                          "--no-ci", "--ms-ssim-linear").stdout))
    assert linear["scale"].item() == "linear" and abs(linear["bd_rate_pct"].item() - db) > 0.05
    md = _run(results, "--anchor", "jpeg", "--metrics", "ms-ssim", "--no-ci").stdout
    assert "BD-rate MS-SSIM (dB) [%]" in md and "MS-SSIM (dB): BD computed on -10 log10(1 - MS-SSIM)" in md
    tex = _run(results, "--anchor", "jpeg", "--metrics", "ms-ssim", "--no-ci", "--format", "latex").stdout
    assert "MS-SSIM (dB): BD computed on -10 log10(1 - MS-SSIM)" in tex
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", str(results), "--out", str(out), "--anchor", "jpeg", "--metrics",
                                    "ms-ssim", "--no-ci", "--data-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert f"{db:+.1f}%" in html and "MS-SSIM (dB): BD computed on" in html
    assert "BD-rate MS-SSIM (dB) [%]" in html


def test_wilcoxon_p_of_per_image_bd_rates_beside_the_interval(results):
    from scipy.stats import wilcoxon

    csv = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--metrics", "psnr",
                                       "--resamples", "100").stdout))
    per = pd.read_csv(io.StringIO(_run(results, "--anchor", "jpeg", "--format", "csv", "--metrics", "psnr",
                                       "--per-image").stdout))
    expected = wilcoxon(per["bd_rate_pct"].to_numpy()).pvalue   # the same test on `table --per-image`'s values
    assert csv["wilcoxon_p"].item() == pytest.approx(expected) and csv["wilcoxon_n"].item() == 2
    md = _run(results, "--anchor", "jpeg", "--metrics", "psnr", "--resamples", "100").stdout
    assert f"p={expected:.2g}" in md and "p: Wilcoxon signed-rank test (two-sided) of the per-image BD-rates" in md
    tex = _run(results, "--anchor", "jpeg", "--metrics", "psnr", "--resamples", "100", "--format", "latex").stdout
    assert f"p={expected:.2g}" in tex and "Wilcoxon signed-rank" in tex
def test_per_image_figures_of_a_hostile_dataset_name_stay_in_the_figure_folder(td, results, tmp_path):
    hostile = td.renamed_dataset(results, tmp_path / "res", "../../escaped")
    folder = tmp_path / "a" / "b"
    res = _run(hostile, "--anchor", "jpeg", "--metrics", "psnr", "--per-image", "--figure", folder / "wins")
    assert res.exit_code == 0, res.output
    written = [p for p in tmp_path.rglob("wins_*") if p.is_file()]
    assert written and all(p.parent == folder for p in written), written


@pytest.mark.parametrize("command", [["table", "--anchor", "jpeg"], ["plot"], ["report"]])
def test_ci_nan_is_a_usage_error(tmp_path, command):
    """click's FloatRange(50, 99.9) lets NaN through; it reached Bootstrap as a ValueError traceback."""
    res = CliRunner().invoke(main, [command[0], str(tmp_path), *command[1:], "--ci", "nan"])
    assert res.exit_code == 2, res.output
    assert "'nan' is not a finite number" in res.output
