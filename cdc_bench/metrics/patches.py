"""HiFiC's FID/256 patching: the images that FID and KID compare.

Every image is cut into non-overlapping 256 x 256 patches (the remainder is dropped); images of at least 384 px
on both sides are cut a second time on the image shifted by 128 px in x and y (``img[128:, 128:]``), so patch
borders do not always fall in the same place. DIV2K-valid gives 6,573 patches, Kodak 192. Source: NeuralCompression
``neuralcompression/metrics/_update_patch_fid.py``.

Hand-written because no library exposes this grid: it is a dozen lines of index arithmetic.
"""

from __future__ import annotations

import numpy as np

PATCH = 256
SHIFT = 128
SHIFT_MIN_SIDE = 384  # the shifted grid only for images with H >= 384 and W >= 384


def patch_positions(height: int, width: int, size: int = PATCH, shift: int = SHIFT,
                    shift_min_side: int = SHIFT_MIN_SIDE) -> list[tuple[int, int]]:
    """Top-left (y, x) of every patch: the plain grid first (row-major), then the shifted grid."""
    positions = [(y, x) for y in range(0, height - size + 1, size) for x in range(0, width - size + 1, size)]
    if height >= shift_min_side and width >= shift_min_side:
        positions += [(y, x) for y in range(shift, height - size + 1, size)
                      for x in range(shift, width - size + 1, size)]
    return positions


def patch_count(height: int, width: int, size: int = PATCH) -> int:
    return len(patch_positions(height, width, size))


def extract_patches(image: np.ndarray, size: int = PATCH) -> np.ndarray:
    """N x size x size x 3 uint8 patches of an H x W x 3 image (N may be 0 for images under 256 px)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    positions = patch_positions(image.shape[0], image.shape[1], size)
    if not positions:
        return np.zeros((0, size, size, 3), dtype=image.dtype)
    return np.stack([image[y:y + size, x:x + size] for y, x in positions])
