"""The runner on real (small) codecs: measurements, failures that do not end a sweep, timeouts, resume."""

import os
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from cdc_bench import codecs as registry
from cdc_bench.codec import BitstreamError, Codec, Option
from cdc_bench.executor import InlineExecutor, ProcessExecutor
from cdc_bench.runner import CodecPlan, plan_tasks, run_task, sweep
from cdc_bench.store import ResultsStore


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


def _tasks(images, out, options=None, rates=(2, 8, 32), metrics=("psnr", "ms-ssim")):
    return plan_tasks([("synthetic", images)], [CodecPlan("test-quant", options or {}, list(rates))],
                      metrics=metrics, out_dir=out)


def test_run_task_measures_bpp_psnr_and_ms_ssim_correctly(images, tmp_path):
    from pytorch_msssim import ms_ssim
    from skimage.metrics import peak_signal_noise_ratio
    import torch

    task = _tasks(images[:1], tmp_path, rates=(8,))[0]
    row = run_task(task)
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
    assert means.loc[2, "psnr"] > means.loc[8, "psnr"] > means.loc[32, "psnr"]
    assert means.loc[2, "bpp"] > means.loc[8, "bpp"] > means.loc[32, "bpp"]
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
    row = run_task(_tasks([("broken", bad)], tmp_path, rates=(8,))[0])
    assert row["status"] == "error" and "broken.png" in row["error"]


def test_a_hanging_item_times_out_and_a_dying_worker_is_reported(images, tmp_path):
    store = ResultsStore(tmp_path / "out")
    tasks = _tasks(images, tmp_path / "out", {"hang_on": "img2", "die_on": "img3"}, rates=(8,))
    summary = sweep(tasks, store, ProcessExecutor(2), run_id="r", timeout=5, progress=False)
    frame = store.frame().set_index("image")
    assert frame.loc["img2", "status"] == "timeout"
    assert frame.loc["img3", "status"] == "error" and "died" in frame.loc["img3", "error"]
    assert (frame.loc[["img0", "img1"], "status"] == "ok").all() and summary.ok == 2


def test_resume_runs_only_missing_items(images, tmp_path):
    out = tmp_path / "out"
    store = ResultsStore(out)
    tasks = _tasks(images, out)
    sweep(tasks[:5], store, InlineExecutor(), run_id="first", progress=False)
    before = store.frame().set_index(["image", "quality"])["finished_at"]
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
