"""`cdc-bench run -c diffc,cdc` on two small Kodak crops with random weights: ok rows for both at several rate
points, real bpp, the table shows them labelled random weights."""
from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner
from PIL import Image

from cdc_bench.cli import main


def test_run_diffc_beside_cdc(kodak_dir, tmp_path):
    crops = tmp_path / "crops"
    crops.mkdir()
    for name in ("kodim01", "kodim23"):
        Image.open(kodak_dir / f"{name}.png").convert("RGB").crop((200, 150, 232, 182)).save(crops / f"{name}.png")
    out = tmp_path / "out"
    args = ["run", "-d", f"folder:{crops}", "-c", "diffc,cdc", "-o", "diffc.weights=random", "-o", "cdc.weights=random",
            "-o", "cdc.steps=2", "-o", "diffc.encode_steps=20", "-o", "diffc.steps=2", "-o", "diffc.chunk_bits=8",
            "-m", "psnr", "--out", str(out), "--workers", "0", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "results.csv")
    assert (frame["status"] == "ok").all(), frame[frame["status"] != "ok"].to_string()
    diffc = frame[frame["codec"] == "diffc"]
    assert set(frame["codec"]) == {"diffc", "cdc"} and diffc["quality"].nunique() >= 4
    assert all(json.loads(o)["weights"] == "random" for o in diffc["options"])
    # real bpp: headers included, more bits at lower recon timesteps, for each crop
    for _, rows in diffc.groupby("image"):
        by_rate = rows.set_index("quality")["bpp"].sort_index(ascending=False)
        assert by_rate.is_monotonic_increasing and by_rate.iloc[0] > 0
    table = CliRunner().invoke(main, ["table", str(out), "--anchor", "cdc"])
    assert table.exit_code == 0, table.output
    assert "diffc [random weights]" in table.output
