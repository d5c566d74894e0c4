"""Exports: FID/KID beside the rows (dataset_metrics.csv, JSON, CompressAI JSON) and CompressAI's own plot
module reading our CompressAI-JSON export (MS-SSIM under its key ``ms-ssim-rgb``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner


from cdc_bench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def results(td, tmp_path_factory, kodak_dir):
    out = tmp_path_factory.mktemp("export") / "res"
    shutil.copytree(td.shared_results(tmp_path_factory, kodak_dir), out)
    td.add_dataset_metrics(out)
    return out


def test_csv_export_writes_dataset_metrics_beside_results(results, tmp_path):
    res = CliRunner().invoke(main, ["export", str(results), "--format", "csv", "-O", str(tmp_path / "r.csv")])
    assert res.exit_code == 0, res.output
    assert str(tmp_path / "dataset_metrics.csv") in res.output
    table = pd.read_csv(tmp_path / "dataset_metrics.csv")
    assert set(table["metric"]) == {"fid", "kid"} and len(table) == 2 * 10
    assert {"protocol", "n_patches", "reliable", "value_lo", "value_hi", "interval"} <= set(table.columns)
    assert not table["reliable"].any()   # 96 patches < 2048: flagged
    kid = table[table["metric"] == "kid"]
    assert np.allclose(kid["value_hi"] - kid["value"], kid["std"]) and (kid["std"] > 0).all()
    assert table.loc[table["metric"] == "fid", "interval"].str.startswith("none").all()


def test_json_export_carries_dataset_metrics(results, tmp_path):
    res = CliRunner().invoke(main, ["export", str(results), "--format", "json", "-O", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    payload = json.loads((tmp_path / "r.json").read_text())
    assert len(payload["dataset_metrics"]) == 20 and "reliable" in payload["dataset_metrics"][0]


def test_write_dataset_metrics_csv_for_the_store(results):
    from cdc_bench.analysis.export import write_dataset_metrics_csv
    from cdc_bench.store.results import ResultsStore

    with ResultsStore(results, create=False) as store:
        path = write_dataset_metrics_csv(store)
    assert path == results / "dataset_metrics.csv" and len(pd.read_csv(path)) == 20


def test_compressai_json_is_read_by_compressais_plot(results, tmp_path):
    res = CliRunner().invoke(main, ["export", str(results), "--format", "compressai-json", "-O", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "c" / "kodak").glob("*.json"))
    assert len(files) == 2
    payload = json.loads(files[0].read_text())
    r = payload["results"]
    assert {"bpp", "psnr-rgb", "ms-ssim-rgb", "fid", "kid", "kid-std", "fid-protocol", "fid-patches"} <= set(r)
    assert len(r["fid"]) == len(r["bpp"]) and r["fid-protocol"] == "fid256"

    from compressai.utils.plot.__main__ import main as compressai_plot, parse_json_file

    parsed = parse_json_file(files[0], "ms-ssim")   # CompressAI converts MS-SSIM to dB itself
    assert parsed["ys"] == pytest.approx(list(-10 * np.log10(1 - np.array(json.loads(files[0].read_text())
                                                                              ["results"]["ms-ssim-rgb"]))))
    out = tmp_path / "compressai-ms-ssim.png"
    compressai_plot(["-f", *map(str, files), "-m", "ms-ssim", "-o", str(out)])
    assert out.stat().st_size > 10_000


def test_random_weights_name_in_compressai_json():
    from cdc_bench.analysis.export import compressai_results

    frame = pd.DataFrame({"dataset": ["d", "d"], "image": ["a", "b"], "codec": ["cdc", "cdc"],
                          "options": ['{"weights": "random"}'] * 2, "quality": [0.0032] * 2, "bpp": [0.5, 0.6],
                          "psnr": [20.0, 21.0], "status": ["ok", "ok"], "preprocess": "none", "device": "cpu"})
    (_, _, payload), = compressai_results(frame)
    assert payload["name"] == "cdc [random weights]"


def test_fid_bootstrap_over_cached_patch_features(td, tmp_path, tmp_path_factory, kodak_dir):
    """--fid-bootstrap reads the per-item features the store keeps (as the runner stores them) and resamples
    patches; the interval brackets the stored FID."""
    from cdc_bench.metrics.frechet import fid_from_features
    from cdc_bench.store.results import KEY, ResultsStore

    out = tmp_path / "res"
    shutil.copytree(td.shared_results(tmp_path_factory, kodak_dir), out)
    rng = np.random.default_rng(1)
    with ResultsStore(out) as store:  # writes features: create=False opens read-only
        frame = store.frame()
        rows = frame[(frame["status"] == "ok") & (frame["codec"] == "jpeg") & (frame["quality"] == "50")]
        origs, recons = [], []
        for _, row in rows.iterrows():
            orig = rng.normal(0, 1, (60, 8)).astype(np.float32)
            recon = (orig + rng.normal(0.2, 0.6, orig.shape)).astype(np.float32)
            store.put_features(tuple(row[k] for k in KEY), "fid256", recon, "test", row["image"], orig)
            origs.append(orig)
            recons.append(recon)
        value = fid_from_features(np.concatenate(origs), np.concatenate(recons))
        store.put_dataset_metric({"dataset": "kodak", "codec": "jpeg", "options": rows["options"].iloc[0],
                                  "quality": "50", "preprocess": rows["preprocess"].iloc[0], "device": "cpu",
                                  "metric": "fid", "protocol": "fid256", "value": value,
                                  "n_images": 2, "n_patches": 120, "feature_extractor": "test"})
    res = CliRunner().invoke(main, ["export", str(out), "--format", "csv", "--fid-bootstrap", "40"])
    assert res.exit_code == 0, res.output
    row = pd.read_csv(out / "export" / "dataset_metrics.csv").iloc[0]
    assert row["value_lo"] < row["value"] < row["value_hi"]
    assert row["interval"].startswith("95% percentile bootstrap over patches (40 resamples")


def test_compressai_json_of_a_lossless_point_is_strict_json_and_says_so(tmp_path):
    from cdc_bench.analysis.export import compressai_results

    frame = pd.DataFrame({"dataset": ["d", "d"], "image": ["a", "a"], "codec": ["png", "jpeg"],
                          "options": ["{}"] * 2, "quality": ["0", "90"], "bpp": [12.0, 2.0],
                          "psnr": [float("inf"), 40.0], "status": ["ok", "ok"], "preprocess": "none",
                          "device": "cpu"})
    payloads = {p["name"]: p for _, _, p in compressai_results(frame)}
    lossless = json.loads(json.dumps(payloads["png"], allow_nan=False))  # Infinity would raise here
    assert lossless["results"]["psnr-rgb"] == [None] and "psnr-rgb: null where the point is lossless" in \
        lossless["notes"][0]
    assert payloads["jpeg"]["results"]["psnr-rgb"] == [40.0] and "notes" not in payloads["jpeg"]


def test_compressai_json_of_a_hostile_dataset_name_stays_in_its_folder(td, results, tmp_path):
    hostile = td.renamed_dataset(results, tmp_path / "res", "../../..")
    out = tmp_path / "x" / "y" / "c"
    res = CliRunner().invoke(main, ["export", str(hostile), "--format", "compressai-json", "-O", str(out)])
    assert res.exit_code == 0, res.output
    written = list(tmp_path.rglob("*.json"))
    assert written and all(out in p.parents for p in written if "res" not in p.relative_to(tmp_path).parts)
