import multiprocessing as mp

import pandas as pd
import pytest

from cdc_bench.store import ResultsStore, item_key, quality_text, recon_path


def _row(image="a", quality="5", **extra):
    row = {"dataset": "d", "image": image, "codec": "jpeg", "options": "{}", "quality": quality, "status": "ok",
           "bpp": 1.0, "psnr": 30.0}
    row.update(extra)
    return row


def test_rows_are_keyed_and_replaced_not_duplicated(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_row(_row(psnr=30.0))
    store.put_row(_row(psnr=31.0))
    store.put_row(_row(image="b"))
    frame = store.frame()
    assert len(frame) == 2
    assert frame.set_index("image").loc["a", "psnr"] == 31.0


def test_new_metric_columns_are_added_on_first_use(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_row(_row(lpips=0.25, note_text="x"))
    store.put_row(_row(image="b"))
    frame = store.frame().set_index("image")
    assert frame.loc["a", "lpips"] == 0.25 and pd.isna(frame.loc["b", "lpips"])
    with pytest.raises(ValueError, match="invalid column"):
        store.put_row(_row(**{"bad name; drop table": 1}))


def test_quality_is_numeric_when_all_numbers(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_rows([_row(quality="5"), _row(quality="0.5", image="b")])
    assert store.frame()["quality"].dtype.kind == "f"


def test_missing_key_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        ResultsStore(tmp_path).put_row({"dataset": "d", "status": "ok"})


def test_finished_keys_and_csv(tmp_path):
    store = ResultsStore(tmp_path)
    store.put_rows([_row(), _row(image="b", status="error", error="boom")])
    assert store.finished_keys(("ok",)) == {("d", "a", "jpeg", "{}", "5")}
    assert len(store.finished_keys()) == 2
    csv = pd.read_csv(store.write_csv())
    assert set(csv["image"]) == {"a", "b"} and list(tmp_path.glob(".*.tmp")) == []


def test_dataset_metrics_and_runs(tmp_path):
    store = ResultsStore(tmp_path)
    key = {"dataset": "d", "codec": "jpeg", "options": "{}", "quality": "5", "metric": "fid", "protocol": "fid256"}
    store.put_dataset_metric({**key, "value": 3.0, "n_patches": 192})
    store.put_dataset_metric({**key, "value": 2.5, "n_patches": 192})
    frame = store.dataset_metrics_frame()
    assert len(frame) == 1 and frame["value"].iloc[0] == 2.5
    store.start_run("r1", {"run_id": "r1", "started_at": "t0"})
    store.end_run("r1", {"run_id": "r1", "started_at": "t0", "ended_at": "t1"})
    assert store.runs() == [{"run_id": "r1", "started_at": "t0", "ended_at": "t1"}]


def test_reading_a_folder_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cdc-bench run"):
        ResultsStore(tmp_path / "nothing", create=False)


def _writer(path, worker, n):
    store = ResultsStore(path)
    for i in range(n):
        store.put_row(_row(image=f"w{worker}-{i}", **{f"m{worker}": float(i)}))


def test_two_processes_write_one_store_without_loss(tmp_path):
    procs = [mp.get_context("spawn").Process(target=_writer, args=(tmp_path, w, 60)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    frame = ResultsStore(tmp_path).frame()
    assert len(frame) == 120 and frame["image"].is_unique
    assert {"m0", "m1"} <= set(frame.columns)


def test_keys_and_paths_are_stable():
    assert quality_text(5) == "5" and quality_text(0.0032) == "0.0032"
    assert item_key("d", "a", "c", "{}", "5") == item_key("d", "a", "c", "{}", "5") != item_key("d", "a", "c", "{}", "6")
    path = recon_path("out", "kodak", "compressai:mbt2018", '{"metric":"mse"}', "3", "kodim01")
    assert path.parts[:3] == ("out", "recon", "kodak") and path.name == "kodim01.png" and ":" not in str(path)
