"""Batched decoding in the runner (``--batch N``): the same rows as unbatched, failures per item, resume."""

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from cdc_bench.codecs import registry
from cdc_bench.sweep.batching import TaskBatch, batch_tasks, run_batch, unbatch
from cdc_bench.codecs.base import BitstreamError, Codec, Option
from cdc_bench.executors.local import InlineExecutor, ProcessExecutor, WorkerDied
from cdc_bench.codecs.plans import CodecPlan
from cdc_bench.sweep.client import plan_tasks, sweep
from cdc_bench.store.results import ResultsStore

#: columns that differ between two runs of the same items (times, run bookkeeping, the batching record)
VOLATILE = {"run_id", "finished_at", "encode_s", "decode_s", "metrics_s", "match_s", "decode_batch", "warnings"}
#: what oneDNN's batch-dependent rounding may change in a CDC decode (measured: at most 1 level, <= 0.1%)
CDC_MAX_LEVELS, CDC_MAX_FRACTION = 1, 1e-3


class Tagged(Codec):
    """A real lossless codec (zlib) whose stream carries the image's tag: ``bad_on`` makes that stream
    undecodable; ``die_on`` kills the worker while encoding that image."""

    name = "test-batch"
    rate_points = (1,)
    option_specs = {"bad_on": Option(-1), "die_on": Option(-1), "slow_on": Option(-1)}
    batch_calls: list[int] = []

    def _encode(self, image, rate):
        tag = int(image[0, 0, 0])
        if tag == self.options["die_on"]:
            import os

            os._exit(3)
        if tag == self.options["slow_on"]:
            import time

            time.sleep(60)
        h, w, _ = image.shape
        return bytes([tag]) + h.to_bytes(4, "big") + w.to_bytes(4, "big") + zlib.compress(image.tobytes())

    def _decode(self, data):
        if data[0] == self.options["bad_on"]:
            raise BitstreamError("synthetic corrupt stream")
        h, w = int.from_bytes(data[1:5], "big"), int.from_bytes(data[5:9], "big")
        return np.frombuffer(zlib.decompress(data[9:]), np.uint8).reshape(h, w, 3).copy()

    def _decode_batch(self, datas):
        type(self).batch_calls.append(len(datas))
        return [self._decode(d) for d in datas]


@pytest.fixture(autouse=True)
def _registered():
    registry.register(Tagged)
    Tagged.batch_calls = []
    yield
    registry.unregister("test-batch")


def _images(folder, shapes):
    """Smooth synthetic images (codable by CDC and JPEG alike); the first pixel's red value is the image's tag."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i, (h, w) in enumerate(shapes):
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.stack([(xx * (c + 1) + yy * (3 - c) + 30 * i) % 256 for c in range(3)], -1).astype(np.uint8)
        arr[0, 0, 0] = i
        path = folder / f"img{i}.png"
        Image.fromarray(arr).save(path)
        items.append((f"img{i}", path))
    return items


def _sweep(out, images, codec, options, rates, batch, executor=None, **kw):
    tasks = plan_tasks([("synthetic", images)], [CodecPlan(codec, options, list(rates))], **kw)
    store = ResultsStore(out)
    summary = sweep(tasks, store, executor or InlineExecutor(), run_id="r", progress=False, batch=batch)
    return summary, store


def _rows(store):
    frame = store.frame().sort_values(["image", "quality"]).reset_index(drop=True)
    return frame[[c for c in frame.columns if c not in VOLATILE]]


def test_jpeg_rows_with_batch_3_equal_unbatched_rows(tmp_path):
    images = _images(tmp_path / "imgs", [(48, 64), (48, 64), (64, 48), (48, 64), (48, 64)])
    _, one = _sweep(tmp_path / "b1", images, "jpeg", {}, (20, 80), batch=1)
    summary, three = _sweep(tmp_path / "b3", images, "jpeg", {}, (20, 80), batch=3)
    assert summary.ok == 10 and summary.failed == 0
    a, b = _rows(one), _rows(three)
    assert list(a.columns) == list(b.columns)
    assert a.equals(b)
    batched = three.frame().set_index(["image", "quality"])["decode_batch"]
    # per rate point: batches [img0 img1 img2] and [img3 img4]; img2 has another size, so it is decoded alone
    assert batched.loc[("img0", "20")] == 2 and batched.loc[("img2", "20")] == 1 and batched.loc[("img4", "80")] == 2


def test_matched_bitrate_rows_with_batch_2_equal_unbatched_rows(tmp_path):
    images = _images(tmp_path / "imgs", [(48, 64)] * 3)
    kw = dict(target_bpp=(1.0,), metrics=("psnr",))
    _, one = _sweep(tmp_path / "b1", images, "jpeg", {}, (), batch=1, **kw)
    summary, two = _sweep(tmp_path / "b2", images, "jpeg", {}, (), batch=2, **kw)
    assert summary.ok == 3 and _rows(one).equals(_rows(two))
    assert set(_rows(two)["quality"]) == {"bpp<=1"}


@pytest.fixture(scope="module")
def tiny_cdc(tmp_path_factory) -> str:
    """A tiny random-weights CDC checkpoint (the architecture of tests/cdc_bench/cdc/conftest.py): seconds."""
    import torch

    from cdc_bench.cdc.checkpoint import build_cdc
    from cdc_bench.cdc.model import CDCConfig

    config = CDCConfig(dim=8, context_channels=8, dim_mults=(1, 1, 2, 2, 2, 3), context_dim_mults=(1, 1, 2, 2),
                       comp_dim=8, comp_dim_mults=(1, 1, 2, 2), reverse_dim_mults=(2, 2, 1, 1),
                       hyper_dims_mults=(2, 2, 2), comp_out_channels=8)
    path = tmp_path_factory.mktemp("tiny") / "tiny-b0.0128.pt"
    torch.save(build_cdc(config, seed=3).state_dict(), path)
    return str(path)


def test_cdc_rows_with_batch_2_equal_unbatched_within_the_onednn_rounding(tmp_path, tiny_cdc):
    images = _images(tmp_path / "imgs", [(64, 64), (64, 64), (128, 64), (64, 64)])
    options = {"checkpoint": tiny_cdc, "steps": 2}
    kw = dict(save_recon=True, metrics=("psnr",))  # MS-SSIM needs images above 160 px
    _, one = _sweep(tmp_path / "b1", images, "cdc", options, (0.0128,), batch=1, **kw)
    summary, two = _sweep(tmp_path / "b2", images, "cdc", options, (0.0128,), batch=2, **kw)
    assert summary.ok == 4 and summary.failed == 0
    a, b = _rows(one), _rows(two)
    assert (a["bytes"] == b["bytes"]).all() and (a["bpp"] == b["bpp"]).all()  # encodes are per item: exact
    assert np.allclose(a["psnr"].astype(float), b["psnr"].astype(float), rtol=1e-4)
    frame = two.frame().set_index("image")
    assert frame.loc["img0", "decode_batch"] == 2 and frame.loc["img1", "decode_batch"] == 2  # one call
    assert frame.loc["img2", "decode_batch"] == 1 and frame.loc["img3", "decode_batch"] == 1  # sizes differ
    assert frame.loc["img0", "decode_s"] == frame.loc["img1", "decode_s"]  # the call's time, shared equally
    for (_, ra), (_, rb) in zip(one.frame().iterrows(), two.frame().iterrows()):
        x, y = (np.asarray(Image.open(io.BytesIO(s.get_recon(r)))).astype(int) for s, r in ((one, ra), (two, rb)))
        diff = np.abs(x - y)
        assert diff.max() <= CDC_MAX_LEVELS and (diff > 0).mean() <= CDC_MAX_FRACTION


def test_a_failing_decode_in_a_batch_fails_alone(tmp_path):
    images = _images(tmp_path / "imgs", [(16, 16)] * 4)
    summary, store = _sweep(tmp_path / "out", images, "test-batch", {"bad_on": 1}, (1,), batch=4)
    frame = store.frame().set_index("image")
    assert summary.ok == 3 and summary.failed == 1
    assert frame.loc["img1", "status"] == "error" and "synthetic corrupt stream" in frame.loc["img1", "error"]
    assert (frame.loc[["img0", "img2", "img3"], "psnr"] == float("inf")).all()  # lossless: decoded right
    assert (frame["decode_batch"] == 1).all()  # the batched call failed: each item decoded alone...
    assert "batched decode failed" in frame.loc["img0", "warnings"]  # ...and the row says so
    assert Tagged.batch_calls == [4]


def test_an_unreadable_image_fails_alone_and_the_rest_still_batch(tmp_path):
    images = _images(tmp_path / "imgs", [(16, 16)] * 3)
    images[1][1].write_bytes(b"not a png")
    results = run_batch(batch_tasks(plan_tasks([("s", images)], [CodecPlan("test-batch", {}, [1])]), 3)[0])
    assert [r.row["status"] for r in results] == ["ok", "error", "ok"]
    assert Tagged.batch_calls == [2] and results[0].row["decode_batch"] == 2


def test_batches_hold_one_rate_point_and_keep_plan_order(tmp_path):
    images = _images(tmp_path / "imgs", [(16, 16)] * 5)
    tasks = plan_tasks([("s", images)], [CodecPlan("test-batch", {}, [1, 2])])
    batches = batch_tasks(tasks, 2)
    assert [[(t.image, t.quality) for t in b.tasks] for b in batches] == [
        [("img0", 1), ("img1", 1)], [("img2", 1), ("img3", 1)], [("img4", 1)],
        [("img0", 2), ("img1", 2)], [("img2", 2), ("img3", 2)], [("img4", 2)]]
    assert "TaskBatch(2 x s test-batch q=1)" == repr(batches[0])
    with pytest.raises(ValueError):
        batch_tasks(tasks, 0)


def test_a_batch_without_a_result_fails_every_item_of_it(tmp_path):
    tasks = plan_tasks([("s", _images(tmp_path / "imgs", [(16, 16)] * 3))], [CodecPlan("test-batch", {}, [1])])
    batch = TaskBatch(tuple(tasks))
    err = WorkerDied("worker process died")
    assert list(unbatch([(batch, err)])) == [(t, err) for t in tasks]


def test_a_dying_worker_fails_its_batch_and_spares_the_others(tmp_path):
    images = _images(tmp_path / "imgs", [(16, 16)] * 4)
    summary, store = _sweep(tmp_path / "out", images, "test-batch", {"die_on": 3}, (1,), batch=2,
                            executor=ProcessExecutor(1))
    status = store.frame().set_index("image")["status"]
    assert list(status.sort_index()) == ["ok", "ok", "env-error", "env-error"]
    assert summary.ok == 2 and summary.failed == 2


def test_resume_runs_only_missing_items_per_item(tmp_path):
    images = _images(tmp_path / "imgs", [(16, 16)] * 5)
    summary, _ = _sweep(tmp_path / "out", images[:2], "test-batch", {}, (1, 2), batch=3)
    assert summary.ok == 4
    Tagged.batch_calls = []
    summary, store = _sweep(tmp_path / "out", images, "test-batch", {}, (1, 2), batch=3)
    assert summary.skipped == 4 and summary.ok == 6 and len(store.frame()) == 10
    assert Tagged.batch_calls == [3, 3]  # the missing img2..img4, one batch per rate point
    summary, _ = _sweep(tmp_path / "out", images, "test-batch", {}, (1, 2), batch=3)
    assert summary.skipped == 10 and summary.ok == 0


def _cli(images, out, *args):
    from click.testing import CliRunner

    from cdc_bench.cli import main

    folder = images[0][1].parent
    return CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "jpeg", "-q", "30,70", "--out", str(out),
                                     "--workers", "0", "--quiet", "-m", "psnr", *args])


def test_the_run_command_batches_and_records_it(tmp_path):
    images = _images(tmp_path / "imgs", [(32, 48)] * 3)
    result = _cli(images, tmp_path / "out", "--batch", "2")
    assert result.exit_code == 0, result.output
    frame = ResultsStore(tmp_path / "out").frame()
    assert len(frame) == 6 and (frame["status"] == "ok").all()
    assert sorted(frame["decode_batch"]) == [1, 1, 2, 2, 2, 2]
    bad = _cli(images, tmp_path / "out2", "--batch", "0")
    assert bad.exit_code == 2 and "--batch" in bad.output


def test_a_dask_worker_gets_a_batch_with_its_images_bytes(tmp_path):
    import distributed  # noqa: F401 - a required dependency: no skip
    from cdc_bench.executors.dask import _read_images, _remote

    images = _images(tmp_path / "imgs", [(32, 48)] * 3)
    tasks = plan_tasks([("s", images)], [CodecPlan("jpeg", {}, [50])], metrics=("psnr",))
    batch = batch_tasks(tasks, 3)[0]
    data = _read_images(batch)
    for _, path in images:  # the worker cannot read the client's files: only the shipped bytes remain
        path.unlink()
    results = _remote(run_batch, batch, data, 60, 1)
    assert [r.row["status"] for r in results] == ["ok"] * 3 and [r.row["decode_batch"] for r in results] == [3] * 3


def test_the_throughput_benchmark_explains_itself():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "benchmarks" / "batch_throughput.py"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--smoke" in proc.stdout, proc.stderr


def test_cdc_with_eta_decodes_the_same_image_in_a_batch(tiny_cdc):
    from cdc_bench.cdc.codec import CDCXParam

    codec = CDCXParam({"checkpoint": tiny_cdc, "steps": 2, "eta": 0.5})
    streams = [codec.encode(np.roll(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3), 5 * i, 0), 0.0128).data
               for i in range(2)]
    alone = [codec.decode(s).astype(int) for s in streams]
    diff = np.abs(alone[1] - codec.decode_batch(streams)[1].astype(int))
    assert diff.max() <= CDC_MAX_LEVELS and (diff > 0).mean() <= CDC_MAX_FRACTION


def test_an_innocent_image_batched_with_a_slow_one_is_not_stored_as_timeout(tmp_path):
    """The batch runs past batch x timeout; each of its items is then run alone: only the slow one times out."""
    images = _images(tmp_path / "imgs", [(48, 64)] * 2)
    tasks = plan_tasks([("synthetic", images)], [CodecPlan("test-batch", {"slow_on": 0}, [1])], metrics=("psnr",))
    summary = sweep(tasks, ResultsStore(tmp_path / "out"), ProcessExecutor(1), run_id="r", progress=False, batch=2,
                    timeout=2)
    status = ResultsStore(tmp_path / "out", create=False).frame().set_index("image")["status"]
    assert status.to_dict() == {"img0": "timeout", "img1": "ok"} and summary.ok == 1
