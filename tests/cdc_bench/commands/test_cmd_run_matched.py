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
    assert shown.output.count("matched to bpp<=0.6") == 2 and "nearest" not in shown.output


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "low"])
def test_bad_targets_exit_2_before_any_work(crops, tmp_path, bad):
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{crops}", "-c", "jpeg", "--target-bpp", bad,
                                       "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 2 and "bits per pixel" in result.output
    assert not (tmp_path / "o").exists()
