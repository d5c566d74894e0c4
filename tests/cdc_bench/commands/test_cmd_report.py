"""``cdc-bench report`` end to end: one HTML file with the figures, tables, speed figure and viewer."""

from __future__ import annotations

import json
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


def test_report(results, kodak_dir, tmp_path):
    originals = td.write_originals(tmp_path / "orig", kodak_dir)
    speed = td.speed_json(tmp_path / "speed.json")
    out = tmp_path / "r" / "report.html"
    res = CliRunner().invoke(main, ["report", str(results), "--out", str(out), "--original", str(originals),
                                    "--viewer-images", "kodim23,kodim01", "--reference", "compressai:webp",
                                    "--speed", str(speed)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert html.count("data:image/svg+xml;base64,") == 3   # PSNR, MS-SSIM, speed
    assert "BD-rate and BD-metric against webp" in html      # anchor: first of hevc, bpg, ..., webp, jpeg present
    data = json.loads(html.split('id="viewer-data">')[1].split("</script>")[0])
    assert [d["image"] for d in data] == ["kodim23", "kodim01"]
    assert all(d["original"] and d["missing"] == 0 for d in data)


def test_report_without_original_still_builds(results, tmp_path):
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", str(results), "--out", str(out), "--data-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "without its original" in res.output
    data = json.loads(out.read_text().split('id="viewer-data">')[1].split("</script>")[0])
    assert data[0]["original"] is None and len(data[0]["curves"]) == 2


def test_report_unknown_viewer_image(results, tmp_path):
    res = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / "r.html"),
                                    "--viewer-images", "kodim99"])
    assert res.exit_code != 0 and "no successful results for image 'kodim99'" in res.output
