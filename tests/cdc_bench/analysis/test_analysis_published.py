"""Published curves: the shipped copies match the team's reference files, and every reader reads them right."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cdc_bench.analysis.published import (DEFAULT_REFERENCES_DIR, PublishedReferenceError, read_compressai_json,
                                       read_user_file, reference_names, resolve_reference)


def test_shipped_copies_are_verbatim(shared_dir):
    src = shared_dir / "reference" / "published"
    # stablecodec/ is copied from the StableCodec repository's results.txt (tests/baselines/stablecodec checks it)
    shipped = [p for p in DEFAULT_REFERENCES_DIR.rglob("*") if p.is_file()
               and p.relative_to(DEFAULT_REFERENCES_DIR).parts[0] != "stablecodec"]
    assert len(shipped) > 50
    for path in shipped:
        assert path.read_bytes() == (src / path.relative_to(DEFAULT_REFERENCES_DIR)).read_bytes(), path


def test_compressai_json(shared_dir):
    path = shared_dir / "reference" / "published" / "compressai" / "kodak" / "bpg_444_x265_ycbcr.json"
    raw = json.loads(path.read_text())["results"]
    curve = resolve_reference("compressai:bpg_444_x265_ycbcr", "kodak")[0]
    order = np.argsort(raw["bpp"])
    assert curve.label == "BPG 8b 444 x265 ycbcr" and curve.style_key == curve.label
    assert curve.points["bpp"].to_numpy() == pytest.approx(np.asarray(raw["bpp"])[order])
    assert curve.points["psnr"].to_numpy() == pytest.approx(np.asarray(raw["psnr-rgb"])[order])
    assert curve.points["ms_ssim"].to_numpy() == pytest.approx(np.asarray(raw["ms-ssim-rgb"])[order])


def test_ms_ssim_in_db_is_converted():
    curve = resolve_reference("compressai:paper-elic2022_ms-ssim", "kodak")[0]
    raw = json.loads((DEFAULT_REFERENCES_DIR / "compressai/kodak/paper-elic2022_ms-ssim.json").read_text())
    db = np.sort(np.asarray(raw["results"]["ms-ssim-db-rgb"]))
    assert curve.points["ms_ssim"].to_numpy() == pytest.approx(1 - 10 ** (-db / 10))
    assert ((curve.points["ms_ssim"] > 0.9) & (curve.points["ms_ssim"] < 1)).all()


def test_hific_csv():
    curve = resolve_reference("hific", "kodak")[0]
    assert curve.label == "HiFiC" and len(curve.points) == 3
    assert curve.points["bpp"].tolist() == pytest.approx([0.1825587, 0.35108609, 0.53773159])
    assert curve.points["lpips"].tolist() == pytest.approx([0.06864742, 0.04278131, 0.02784851])
    assert curve.points["fid"].isna().all()   # blank for Kodak in the published file
    assert len(resolve_reference("hific", "div2k")[0].points) == 3


def test_illm_csv():
    illm = resolve_reference("msillm", "kodak")[0]
    nogan = resolve_reference("nogan", "kodak")[0]
    frame = pd.read_csv(DEFAULT_REFERENCES_DIR / "neuralcompression_illm" / "results.csv")
    want = frame[(frame["model"] == "MS-ILLM") & (frame["dataset"] == "kodak")].sort_values("bpp")
    assert illm.points["psnr"].to_numpy() == pytest.approx(want["psnr"].to_numpy())
    assert len(nogan.points) == 8 and nogan.label == "No-GAN"


def test_user_csv_with_several_curves(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("name,dataset,bpp,PSNR,LPIPS\nours,kodak,0.1,28.0,0.2\nours,kodak,0.2,30.0,0.1\n"
                    "ours,clic,0.1,29.0,0.2\ntheirs,kodak,0.15,27.0,0.3\n")
    curves = resolve_reference(str(path), "kodak")
    assert [c.label for c in curves] == ["ours (mine.csv)", "theirs (mine.csv)"]
    assert not any(c.published for c in curves) and "(published)" not in curves[0].legend
    assert curves[0].points["psnr"].tolist() == [28.0, 30.0]
    assert curves[0].points["lpips"].tolist() == [0.2, 0.1]


def test_user_json(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "Mine", "results": {"bpp": [0.3, 0.1], "psnr": [31.0, 27.0]}}))
    curve = read_user_file(path)[0]
    assert curve.label == "Mine (mine.json)" and curve.legend == "Mine (mine.json)" and curve.points["bpp"].tolist() == [0.1, 0.3]
    assert curve.points["psnr"].tolist() == [27.0, 31.0]


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(PublishedReferenceError, match="Did you mean bpg_444_x265_ycbcr"):
        resolve_reference("compressai:bpg_444", "kodak")
    with pytest.raises(PublishedReferenceError, match="unknown; use compressai:<name>, hific, msillm, nogan"):
        resolve_reference("vvc", "kodak")
    with pytest.raises(PublishedReferenceError, match="no rows for dataset 'tecnick'; it has clic2020, div2k, kodak"):
        resolve_reference("hific", "tecnick")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(PublishedReferenceError, match="not a CompressAI result JSON"):
        read_compressai_json(bad)
    with pytest.raises(PublishedReferenceError, match="--references-dir"):
        resolve_reference("hific", "kodak", references_dir=tmp_path)


def test_reference_names_list_what_exists():
    names = reference_names()
    assert "compressai:jpeg" in names and "hific" in names and "msillm" in names and "nogan" in names
