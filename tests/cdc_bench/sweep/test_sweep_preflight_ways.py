"""The pre-flight row for missing CDC weights names the ways on without a download, as the download error does."""

from cdc_bench.sweep import preflight


def test_missing_cdc_weights_row_names_the_dry_run_and_the_manual_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    rows = [p for p in preflight.merge(preflight.codec_problems("cdc")) if p.kind == "weight files"]
    assert len(rows) == 1
    assert "-o cdc.weights=random" in rows[0].fix
    assert f"put the file(s) in {tmp_path / 'cache' / 'cdc'}" in rows[0].fix


def test_metric_weight_rows_offer_no_random_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    (row,) = [p for p in preflight.merge(preflight.metric_problems("fd-dinov2")) if p.kind == "weight files"]
    assert "weights=random" not in row.fix and "models" in row.fix
