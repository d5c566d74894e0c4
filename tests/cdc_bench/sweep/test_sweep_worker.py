"""The runner on real (small) codecs: measurements, failures that do not end a sweep, timeouts, resume."""

import errno
import io
import os
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from cdc_bench.codecs import registry
from cdc_bench.codecs.base import BitstreamError, Codec, Option
from cdc_bench.executors.local import InlineExecutor, ProcessExecutor
from cdc_bench.codecs.plans import CodecPlan
from cdc_bench.sweep.worker import run_task
from cdc_bench.sweep.client import plan_tasks, sweep
from cdc_bench.store.results import ResultsStore


class QuantZlib(Codec):
    """A real lossy codec: uniform quantisation with step ``rate``, then zlib; the header carries the size."""

    name = "test-quant"
    rate_points = (2, 8, 32)
    option_specs = {"fail_on": Option(""), "hang_on": Option(""), "die_on": Option("")}

    def _encode(self, image, rate):
        name = _current_image(image)
        if name and name == self.options["fail_on"]:
            raise RuntimeError("synthetic encoder crash")
        if name and name == self.options["hang_on"]:
            time.sleep(60)
        if name and name == self.options["die_on"]:
            os._exit(3)
        q = np.round(image.astype(np.float64) / rate).astype(np.uint8)
        h, w, _ = image.shape
        header = h.to_bytes(4, "big") + w.to_bytes(4, "big") + int(rate).to_bytes(2, "big")
        return header + zlib.compress(q.tobytes(), 9)

    def _decode(self, data):
        if len(data) < 10:
            raise BitstreamError("truncated header")
        h, w, step = (int.from_bytes(data[a:b], "big") for a, b in ((0, 4), (4, 8), (8, 10)))
        q = np.frombuffer(zlib.decompress(data[10:]), np.uint8).reshape(h, w, 3)
        return np.clip(q.astype(np.float64) * step, 0, 255).astype(np.uint8)


def _current_image(image):
    """Images in these tests carry their name in the first pixel's red value (see ``images``)."""
    return f"img{image[0, 0, 0]}"


@pytest.fixture(autouse=True)
def _registered():
    registry.register(QuantZlib)
    yield
    registry.unregister("test-quant")


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(1)
    items = []
    for i in range(4):
        yy, xx = np.mgrid[0:200, 0:180]
        arr = np.stack([(xx + yy + 40 * c) % 256 for c in range(3)], -1).astype(np.uint8)
        arr = np.clip(arr.astype(int) + rng.integers(-10, 10, arr.shape), 0, 255).astype(np.uint8)
        arr[0, 0, 0] = i
        path = tmp_path / "imgs" / f"img{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(arr).save(path)
        items.append((f"img{i}", path))
    return items


def _tasks(images, out=None, options=None, rates=(2, 8, 32), metrics=("psnr", "ms-ssim"), **kw):
    return plan_tasks([("synthetic", images)], [CodecPlan("test-quant", options or {}, list(rates))],
                      metrics=metrics, **kw)


def test_run_task_measures_bpp_psnr_and_ms_ssim_correctly(images, tmp_path):
    from pytorch_msssim import ms_ssim
    from skimage.metrics import peak_signal_noise_ratio
    import torch

    task = _tasks(images[:1], tmp_path, rates=(8,))[0]
    row = run_task(task).row
    assert row["status"] == "ok", row.get("error")
    original = np.asarray(Image.open(images[0][1]))
    codec = QuantZlib()
    data = codec.encode(original, 8).data
    recon = codec.decode(data)
    assert row["bytes"] == len(data)
    assert row["bpp"] == pytest.approx(8 * len(data) / (200 * 180))
    assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(original, recon, data_range=255), abs=1e-9)
    t = lambda a: torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].double()  # noqa: E731
    assert row["ms_ssim"] == pytest.approx(float(ms_ssim(t(original), t(recon), data_range=255)), abs=1e-5)
    assert row["encode_s"] > 0 and row["decode_s"] > 0


def test_psnr_rises_with_rate_and_rows_are_stored(images, tmp_path):
    store = ResultsStore(tmp_path / "out")
    summary = sweep(_tasks(images, tmp_path / "out"), store, InlineExecutor(), run_id="r", progress=False)
    assert summary.ok == 12 and summary.failed == 0
    means = store.frame().groupby("quality")[["psnr", "bpp"]].mean()
    assert means.loc["2", "psnr"] > means.loc["8", "psnr"] > means.loc["32", "psnr"]
    assert means.loc["2", "bpp"] > means.loc["8", "bpp"] > means.loc["32", "bpp"]
    assert (tmp_path / "out" / "results.csv").exists()


def test_a_crashing_item_becomes_an_error_row_and_the_sweep_goes_on(images, tmp_path):
    store = ResultsStore(tmp_path / "out")
    tasks = _tasks(images, tmp_path / "out", {"fail_on": "img1"}, rates=(8,))
    summary = sweep(tasks, store, ProcessExecutor(2), run_id="r", progress=False)
    frame = store.frame().set_index("image")
    assert summary.ok == 3 and summary.failed == 1
    assert frame.loc["img1", "status"] == "error"
    assert "synthetic encoder crash" in frame.loc["img1", "error"]


def test_unreadable_image_becomes_an_error_row(images, tmp_path):
    bad = tmp_path / "imgs" / "broken.png"
    bad.write_bytes(images[0][1].read_bytes()[:300])
    row = run_task(_tasks([("broken", bad)], tmp_path, rates=(8,))[0]).row
    assert row["status"] == "error" and "broken.png" in row["error"]


def test_a_hanging_item_times_out_and_a_dying_worker_is_reported(images, tmp_path):
    store = ResultsStore(tmp_path / "out")
    tasks = _tasks(images, tmp_path / "out", {"hang_on": "img2", "die_on": "img3"}, rates=(8,))
    summary = sweep(tasks, store, ProcessExecutor(2), run_id="r", timeout=5, progress=False)
    frame = store.frame().set_index("image")
    assert frame.loc["img2", "status"] == "timeout"
    assert frame.loc["img3", "status"] == "env-error" and "died" in frame.loc["img3", "error"]
    assert (frame.loc[["img0", "img1"], "status"] == "ok").all() and summary.ok == 2


def test_resume_runs_only_missing_items(images, tmp_path):
    out = tmp_path / "out"
    store = ResultsStore(out)
    tasks = _tasks(images, out)
    sweep(tasks[:5], store, InlineExecutor(), run_id="first", progress=False)
    before = store.frame().set_index(["image", "quality"])["finished_at"]
    assert len(before) == 5
    summary = sweep(tasks, store, InlineExecutor(), run_id="second", progress=False)
    assert summary.skipped == 5 and summary.ok == 7
    after = store.frame().set_index(["image", "quality"])
    assert len(after) == 12
    assert (after.loc[before.index, "finished_at"] == before).all()
    assert set(after["run_id"]) == {"first", "second"}


def test_errors_are_retried_only_when_asked(images, tmp_path):
    out = tmp_path / "out"
    store = ResultsStore(out)
    sweep(_tasks(images[:1], out, {"fail_on": "img0"}, rates=(8,)), store, InlineExecutor(), run_id="a", progress=False)
    again = sweep(_tasks(images[:1], out, {"fail_on": "img0"}, rates=(8,)), store, InlineExecutor(), run_id="b",
                  progress=False)
    assert again.skipped == 1
    retried = sweep(_tasks(images[:1], out, {"fail_on": "img0"}, rates=(8,)), store, InlineExecutor(), run_id="c",
                    retry_errors=True, progress=False)
    assert retried.skipped == 0 and retried.failed == 1


def test_truncated_bitstream_is_a_clear_error():
    with pytest.raises(BitstreamError):
        QuantZlib().decode(b"\x00\x01")


# --- the key holds the protocol; metrics are added, not re-keyed; environment errors are retried ----------------

@pytest.fixture
def encodes(monkeypatch):
    """Counts real encodes (the runner caches codec instances, so count on the class)."""
    calls = []
    real = QuantZlib._encode
    monkeypatch.setattr(QuantZlib, "_encode", lambda self, image, rate: calls.append(rate) or real(self, image, rate))
    return calls


def test_another_preprocess_is_another_row(images, tmp_path, encodes):
    store = ResultsStore(tmp_path / "out")
    sweep(_tasks(images[:2], rates=(8,)), store, InlineExecutor(), run_id="a", progress=False)
    again = sweep(_tasks(images[:2], rates=(8,), preprocess="center-crop:64"), store, InlineExecutor(), run_id="b",
                  progress=False)
    assert again.skipped == 0 and again.ok == 2 and len(encodes) == 4
    frame = store.frame()
    assert len(frame) == 4 and set(frame["preprocess"]) == {"none", "center-crop:64"}
    assert set(frame.loc[frame["preprocess"] == "center-crop:64", "height"]) == {64}


def test_adding_a_metric_measures_the_saved_reconstruction_without_encoding(images, tmp_path, encodes):
    store = ResultsStore(tmp_path / "out")
    sweep(_tasks(images[:2], metrics=("psnr",), save_recon=True), store, InlineExecutor(), run_id="a", progress=False)
    assert len(encodes) == 6 and store.frame()["ms_ssim"].isna().all()
    before = store.frame().set_index(["image", "quality"])
    summary = sweep(_tasks(images[:2], metrics=("psnr", "ms-ssim"), save_recon=True), store, InlineExecutor(),
                    run_id="b", progress=False)
    assert summary.ok == 6 and summary.skipped == 0 and len(encodes) == 6  # no new encode
    after = store.frame().set_index(["image", "quality"])
    assert len(after) == 6 and after["ms_ssim"].between(0, 1).all()
    assert (after["bpp"] == before["bpp"]).all() and (after["psnr"] == before["psnr"]).all()
    # the same metrics again: nothing to do
    assert sweep(_tasks(images[:2], metrics=("ms-ssim",)), store, InlineExecutor(), run_id="c",
                 progress=False).skipped == 6


def test_adding_a_metric_without_saved_reconstructions_reruns_the_item(images, tmp_path, encodes):
    store = ResultsStore(tmp_path / "out")
    sweep(_tasks(images[:1], metrics=("psnr",)), store, InlineExecutor(), run_id="a", progress=False)
    sweep(_tasks(images[:1], metrics=("ms-ssim",)), store, InlineExecutor(), run_id="b", progress=False)
    frame = store.frame()
    assert len(encodes) == 6 and len(frame) == 3
    assert frame["psnr"].notna().all() and frame["ms_ssim"].notna().all()  # psnr kept from the first run


def test_workers_write_nothing_and_the_parent_stores_the_reconstruction(images, tmp_path):
    from PIL import Image

    task = _tasks(images[:1], rates=(8,), save_recon=True)[0]
    before = sorted(tmp_path.rglob("*"))
    result = run_task(task)
    assert sorted(tmp_path.rglob("*")) == before  # pure: nothing written
    assert result.row["status"] == "ok" and result.recon_png.startswith(b"\x89PNG")
    store = ResultsStore(tmp_path / "out")
    sweep([task], store, InlineExecutor(), run_id="r", progress=False)
    recon = np.asarray(Image.open(store.recon_file(store.frame().iloc[0])))
    assert recon.shape == (200, 180, 3)
    np.testing.assert_array_equal(recon, np.asarray(Image.open(io.BytesIO(result.recon_png))))


def test_shipped_image_bytes_give_the_same_row(images, tmp_path):
    from dataclasses import replace

    task = _tasks(images[:1], rates=(8,))[0]
    shipped = replace(task, path="elsewhere/img0.png", image_data=images[0][1].read_bytes())
    a, b = run_task(task).row, run_task(shipped).row
    assert b["status"] == "ok" and a["bpp"] == b["bpp"] and a["psnr"] == b["psnr"]


@pytest.mark.parametrize("fault", [OSError(errno.ENOSPC, "No space left on device"), MemoryError()])
def test_environment_errors_are_retried_by_default_item_errors_are_not(images, tmp_path, monkeypatch, fault):
    store = ResultsStore(tmp_path / "out")
    tasks = _tasks(images[:2], rates=(8,))

    def full_disk(self, image, rate):  # the codec base wraps it in a CodecError; its cause decides
        raise fault

    with monkeypatch.context() as m:
        m.setattr(QuantZlib, "_encode", full_disk)
        sweep(tasks[:1], store, InlineExecutor(), run_id="a", progress=False)
    sweep(_tasks(images[1:2], options={"fail_on": "img1"}, rates=(8,)), store, InlineExecutor(), run_id="a",
          progress=False)
    status = dict(zip(store.frame()["image"], store.frame()["status"]))
    assert status == {"img0": "env-error", "img1": "error"}
    again = sweep(tasks[:1] + _tasks(images[1:2], options={"fail_on": "img1"}, rates=(8,)), store, InlineExecutor(),
                  run_id="b", progress=False)
    assert again.skipped == 1 and again.ok == 1
    assert dict(zip(store.frame()["image"], store.frame()["status"])) == {"img0": "ok", "img1": "error"}
