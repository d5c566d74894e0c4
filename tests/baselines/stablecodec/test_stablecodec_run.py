"""`cdc-bench run` with stablecodec beside CDC, both on random weights: ok rows with real bpp, both in the table."""

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner
from PIL import Image

from cdc_bench.cli import main


def test_stablecodec_and_cdc_give_ok_rows_with_real_bpp(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(2):
        yy, xx = np.mgrid[0:64, 0:96]
        arr = np.stack([(xx * (c + 2) + yy * (i + 1)) % 256 for c in range(3)], -1)
        Image.fromarray(arr.astype(np.uint8)).save(root / f"crop{i}.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "run", "-d", f"folder:{root}", "-c", "stablecodec,cdc", "-o", "stablecodec.weights=random",
        "-o", "cdc.weights=random", "-o", "cdc.steps=2", "-o", "stablecodec.qualities=2",
        "-o", "cdc.qualities=0.0032", "-m", "psnr", "--out", str(out), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "stablecodec [random weights]" in result.output and "cdc [random weights]" in result.output
    frame = pd.read_csv(out / "results.csv")
    assert sorted(frame["codec"].unique()) == ["cdc", "stablecodec"]
    assert (frame["status"] == "ok").all() and len(frame) == 4
    assert np.allclose(frame["bpp"], 8 * frame["bytes"] / (frame["height"] * frame["width"]))
    ours = frame[frame["codec"] == "stablecodec"]
    assert (ours["bytes"] > 20).all() and all(json.loads(o)["weights"] == "random" for o in ours["options"])
