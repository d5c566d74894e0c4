"""``cdc-bench report`` end to end: one HTML file with the figures, tables, speed figure and viewer."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner


from cdc_bench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def results(td, tmp_path_factory, kodak_dir):
    return td.shared_results(tmp_path_factory, kodak_dir)


def test_report(td, results, kodak_dir, tmp_path):
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


def test_report_notes_fid_protocol_per_image_table_and_subset(td, results, tmp_path, kodak_dir):
    import shutil

    copy = tmp_path / "res"
    shutil.copytree(results, copy)
    td.add_dataset_metrics(copy)
    originals = td.write_originals(tmp_path / "orig", kodak_dir)
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", str(copy), "--out", str(out), "--original", str(originals),
                                    "--reference", "compressai:jpeg", "--resamples", "100"])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "<h2>kodak (2 of 24 images), center-crop:192</h2>" in page
    assert "published curves are full-dataset means" in page
    assert "FID: protocol fid256, 96 patches; UNRELIABLE: fewer than 2048 patches" in page
    assert "KID: protocol fid256, 96 patches" in page and "std over 100 random subsets of 48 patches" in page
    assert "<summary>Per-image values</summary>" in page and page.count("kodim01") >= 10
    assert ("Bands and [lo, hi]: 95% bootstrap confidence interval of the mean over images (percentile, 100 "
            "resamples, seed 0)") in page
    assert "lossy WebP at quality 95" in page


def test_report_lossless_is_larger_and_several_folders(results, tmp_path):
    import shutil

    other = tmp_path / "second"
    shutil.copytree(results, other)
    small, big = tmp_path / "small.html", tmp_path / "big.html"
    for out, extra in ((small, []), (big, ["--lossless"])):
        res = CliRunner().invoke(main, ["report", str(results), str(other), "--out", str(out), "--no-ci",
                                        "--data-root", str(tmp_path), *extra])
        assert res.exit_code == 0, res.output
    assert big.stat().st_size > 1.5 * small.stat().st_size
    assert "lossless WebP (exact pixels)" in big.read_text()
    data = json.loads(small.read_text().split('id="viewer-data">')[1].split("</script>")[0])
    assert f"jpeg (results={results.name})" in data[0]["curves"] and "jpeg (results=second)" in data[0]["curves"]


def test_random_weights_runs_are_marked_in_report_and_table(tmp_path):
    from cdc_bench.plots.report import build_report
    from cdc_bench.analysis.bdrate import bd_table
    from cdc_bench.analysis.tables import to_markdown
    from cdc_bench.analysis.curves import metric_spec, rd_points

    rows = []
    for codec, options, scale in (("jpeg", "{}", 1.0), ("cdc", '{"steps": 2, "weights": "random"}', 0.7)):
        for q, bpp in enumerate((0.2, 0.4, 0.8)):
            for image, offset in (("a", 0.0), ("b", 1.0)):
                rows.append({"dataset": "d", "image": image, "codec": codec, "options": options, "quality": q,
                             "bpp": bpp * scale, "psnr": 30 + 3 * q + offset, "status": "ok"})
    frame = pd.DataFrame(rows)
    specs = [metric_spec("psnr")]
    page = build_report(frame, specs, anchor="jpeg")
    assert "cdc [random weights]: random weights." in page
    md = to_markdown(bd_table(rd_points(frame, specs), "jpeg", specs))
    assert any(line.split("|")[1].strip() == "cdc [random weights]" for line in md.splitlines() if line.startswith("|"))


def test_an_anchor_that_is_not_in_the_results_is_refused(tmp_path):
    """`report --anchor nothere` wrote a report without any BD table and said nothing."""
    from PIL import Image
    import numpy as np

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(folder / "a.png")
    out = tmp_path / "res"
    ran = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "jpeg", "-q", "20,80", "-m", "psnr",
                                    "-j", "0", "--out", str(out), "--quiet"])
    assert ran.exit_code == 0, ran.output
    res = CliRunner().invoke(main, ["report", str(out), "--anchor", "nothere", "--out", str(tmp_path / "r.html")])
    assert res.exit_code != 0 and "--anchor 'nothere' is in none of the results; codecs there: jpeg" in res.output
    assert not (tmp_path / "r.html").exists()
