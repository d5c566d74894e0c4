"""`cdc-bench run --target-bpp`: rows at matched bitrates on real Kodak crops, and `compare` uses them."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from cdc_bench.cli import main


@pytest.fixture(scope="module")
def crops(tmp_path_factory, kodak_dir):
    root = tmp_path_factory.mktemp("crops")
    for name in ("kodim23", "kodim05"):
        Image.open(kodak_dir / f"{name}.png").crop((256, 128, 512, 320)).save(root / f"{name}.png")
    return root


def test_matched_rows_meet_their_targets_and_record_the_search(crops, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{crops}", "-c", "jpeg,hevc", "--target-bpp",
                                       "0.6,1.2,0.6", "--out", str(out), "--workers", "0", "--quiet",
                                       "--save-recon"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "results.csv", dtype={"quality": str, "matched_rate": str})
    assert len(frame) == 2 * 2 * 2 and (frame["status"] == "ok").all()   # the repeated target ran once
    assert set(frame["quality"]) == {"bpp<=0.6", "bpp<=1.2"}
    assert (frame["bpp"] <= frame["target_bpp"]).all() and frame["match_met"].all()
    for _, row in frame.iterrows():
        probes = json.loads(row["probes"])
        assert [row["matched_rate"], row["bpp"]] in probes   # the chosen point was measured, not guessed
    # a matched row's bpp is the real size of a stream at that rate point
    jpeg = frame[(frame["codec"] == "jpeg") & (frame["image"] == "kodim23")].iloc[0]
    from baselines.classical import JPEG

    image = np.asarray(Image.open(crops / "kodim23.png").convert("RGB"))
    assert 8 * len(JPEG().encode(image, int(jpeg["matched_rate"])).data) / image[..., 0].size == jpeg["bpp"]

    shown = CliRunner().invoke(main, ["compare", str(out), "--image", "kodim23", "--bpp", "0.6", "--crop", "64",
                                      "--format", "png", "--data-root", str(crops.parent)])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("matched to bpp<=0.6") == 2 and "nearest of its rate points" not in shown.output


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "low"])
def test_bad_targets_exit_2_before_any_work(crops, tmp_path, bad):
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{crops}", "-c", "jpeg", "--target-bpp", bad,
                                       "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 2 and "bits per pixel" in result.output
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def unmet(crops, tmp_path_factory):
    """JPEG matched to 0.02 bpp (its lowest quality gives more on these crops: not met), 0.6 and 1.2 (met), and
    WebP at rate points as the anchor."""
    out = tmp_path_factory.mktemp("unmet") / "out"
    base = ["-d", f"folder:{crops}", "--out", str(out), "--workers", "0", "--quiet", "-m", "psnr"]
    res = CliRunner().invoke(main, ["run", "-c", "jpeg", "--target-bpp", "0.02,0.6,1.2", *base])
    assert res.exit_code == 0, res.output
    assert "✗" in res.output   # the run's own summary table marks the point (the cell wraps at 80 columns)
    res = CliRunner().invoke(main, ["run", "-c", "webp", "-q", "5,30,60,90", *base])
    assert res.exit_code == 0, res.output
    return out


def test_unmet_targets_are_marked_and_left_out_of_bd(unmet):
    import io

    res = CliRunner().invoke(main, ["table", str(unmet), "--anchor", "webp", "--no-ci"])
    assert res.exit_code == 0, res.output
    assert "✗ jpeg bpp<=0.02: target not met on 2 of 2 images" in res.stdout
    assert "left out of BD (--include-unmet keeps it)" in res.stdout
    csv = [pd.read_csv(io.StringIO(CliRunner().invoke(main, ["table", str(unmet), "--anchor", "webp", "--no-ci",
                                                             "--format", "csv", *extra]).stdout))
           for extra in ([], ["--include-unmet"])]
    assert csv[1]["unmet"].str.contains("kept in BD").all()
    assert csv[0]["bd_rate_pct"].item() != pytest.approx(csv[1]["bd_rate_pct"].item(), abs=1e-6)


def test_unmet_targets_are_marked_in_figures_report_and_export(unmet, tmp_path):
    res = CliRunner().invoke(main, ["plot", str(unmet), "--format", "svg", "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert "jpeg bpp<=0.02: target not met" in res.output
    svg = [p.read_text() for p in (tmp_path / "f").glob("rd_*_psnr.svg")]
    assert len(svg) == 1 and "target not met" in svg[0] and "red ✗" in svg[0]
    page = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", str(unmet), "--out", str(page), "--no-ci", "--anchor", "webp"])
    assert res.exit_code == 0, res.output
    assert page.read_text().count("bpp&lt;=0.02: target not met") >= 2   # dataset warning and BD footnote
    res = CliRunner().invoke(main, ["export", str(unmet), "--format", "compressai-json", "--output", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    payload = [json.loads(p.read_text()) for p in (tmp_path / "c").rglob("jpeg-*.json")][0]
    assert payload["results"]["target-met"] == [False, True, True]
    assert "target NOT MET at bpp<=0.02" in payload["description"]


def test_q_with_target_bpp_is_refused(crops, tmp_path):
    res = CliRunner().invoke(main, ["run", "-d", f"folder:{crops}", "-c", "jpeg", "-q", "50", "--target-bpp", "0.5",
                                    "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 2 and "--target-bpp wins" in res.output and "drop -q" in res.output
    assert not (tmp_path / "o").exists()
