"""``cdc-bench plot`` end to end on a real results folder (Pillow JPEG/WebP on Kodak crops)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plots"))
import plots_testdata as td  # noqa: E402

from cdc_bench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def results(tmp_path_factory, kodak_dir):
    return td.shared_results(tmp_path_factory, kodak_dir)


def test_plot_writes_pdf_and_png(results, tmp_path):
    from PIL import Image
    from pypdf import PdfReader

    out = tmp_path / "figs"
    res = CliRunner().invoke(main, ["plot", str(results), "--metrics", "psnr,ms-ssim", "--format", "pdf,png",
                                    "--width", "6.9", "--reference", "compressai:jpeg", "--reference", "hific",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "20 rows used, 1 left out" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["rd_kodak_ms-ssim.pdf", "rd_kodak_ms-ssim.png",
                                                     "rd_kodak_psnr.pdf", "rd_kodak_psnr.png"]
    with Image.open(out / "rd_kodak_psnr.png") as img:
        assert img.size[0] == 2070   # 6.9 in at 300 dpi
    text = PdfReader(out / "rd_kodak_psnr.pdf").pages[0].extract_text()
    assert "JPEG (published)" in text and "HiFiC (published)" in text


def test_plot_default_out_and_metrics(results, tmp_path):
    import shutil

    copy = tmp_path / "res"
    shutil.copytree(results, copy)
    res = CliRunner().invoke(main, ["plot", str(copy), "--format", "svg"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (copy / "figures").iterdir())
    assert names == ["rd_kodak_ms-ssim.svg", "rd_kodak_psnr.svg"]


def test_plot_speed_only(tmp_path):
    speed = td.speed_json(tmp_path / "speed.json")
    res = CliRunner().invoke(main, ["plot", "--speed", str(speed), "--format", "png", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "speed.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--format", "gif"], "--format: unknown gif"),
    (["--metrics", "psnrr"], "unknown metric 'psnrr'. Did you mean psnr"),
    (["--reference", "compressai:nope"], "no file"),
])
def test_plot_bad_input_is_explained(results, tmp_path, args, message):
    res = CliRunner().invoke(main, ["plot", str(results), "--out", str(tmp_path), *args])
    assert res.exit_code != 0
    assert message in res.output


def test_plot_without_results_says_so(tmp_path):
    res = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert res.exit_code != 0 and "no results in" in res.output and "cdc-bench run" in res.output
