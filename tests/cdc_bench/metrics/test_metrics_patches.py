"""HiFiC's FID/256 patch grid: counts on real dataset sizes, positions, contents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cdc_bench.metrics.patches import extract_patches, patch_count, patch_positions


def test_kodak_gives_192_patches(kodak_dir):
    from PIL import Image

    sizes = [Image.open(p).size for p in sorted(kodak_dir.glob("kodim*.png"))]
    assert len(sizes) == 24
    assert sum(patch_count(h, w) for w, h in sizes) == 192


def test_div2k_valid_gives_6573_patches(shared_dir):
    listing = json.loads((shared_dir / "reference" / "checksums" / "div2k_valid_hr.json").read_text())["files"]
    assert len(listing) == 100
    assert sum(patch_count(f["height"], f["width"]) for f in listing) == 6573


def test_positions_plain_grid_then_shifted_grid():
    # 512 x 768 (Kodak landscape): 2 x 3 plain patches, then the grid of img[128:, 128:] (384 x 640): 1 x 2.
    assert patch_positions(512, 768) == [(0, 0), (0, 256), (0, 512), (256, 0), (256, 256), (256, 512),
                                         (128, 128), (128, 384)]


@pytest.mark.parametrize("h, w, expected", [(255, 1000, 0), (256, 256, 1), (383, 1000, 3), (384, 384, 2),
                                             (384, 383, 1), (640, 640, 4 + 4)])
def test_shifted_grid_only_from_384_on_both_sides(h, w, expected):
    assert patch_count(h, w) == expected


def test_patches_are_the_image_crops():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (512, 768, 3), dtype=np.uint8)
    patches = extract_patches(image)
    assert patches.shape == (8, 256, 256, 3) and patches.dtype == np.uint8
    np.testing.assert_array_equal(patches[4], image[256:512, 256:512])
    np.testing.assert_array_equal(patches[7], image[128:384, 384:640])


def test_small_image_gives_no_patch_and_bad_shape_is_refused():
    assert extract_patches(np.zeros((100, 300, 3), np.uint8)).shape == (0, 256, 256, 3)
    with pytest.raises(ValueError, match="H x W x 3"):
        extract_patches(np.zeros((300, 300), np.uint8))
