"""SSIMULACRA 2 against the C++ reference (libjxl / cloudinary ``ssimulacra2``) on synthetic pairs.

The pairs and their C++ scores are those of imazen/ssimulacra2's ``capture_cpp_reference`` (its
``src/reference_data.rs``, captured 2026-01-04 from the C++ binary): the images are regenerated here from their
definitions (gradients, checkerboards, an LCG's noise, box blur, sharpen) and their raw RGB bytes are checked
against the sha256 recorded with each score, so the inputs are provably the ones the C++ program scored.

Tolerances per kind of pair, as imazen's own parity notes (REFERENCE_TESTING.md) found them: pairs of unlike
patterns agree to 0.002 or better; blurred pairs within 0.3 (0.24 seen: the C++ float32 recursive filter
accumulates along each row); nearly identical uniform images within 2.5, where the C++ value itself is float32
noise (it scores a shift of 1 lower than a shift of 5).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cdc_bench.metrics import get_metric
from cdc_bench.metrics.ssimulacra2 import blur, recursive_gaussian, ssimulacra2

W = H = 64


def uniform(value: int, size: int = W) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def gradient_h(size: int = W) -> np.ndarray:
    row = (np.arange(size) * 255 // (size - 1)).astype(np.uint8)
    return np.repeat(np.broadcast_to(row[None, :, None], (size, size, 1)), 3, axis=2).copy()


def edge_vertical(size: int = W) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    image[:, size // 2:] = 255
    return image


def noise(seed: int, size: int = W) -> np.ndarray:
    """The generator's LCG (Knuth's MMIX constants), one byte ``(state >> 33) & 0xFF`` per sample."""
    state, out, mask = seed, np.empty(size * size * 3, np.uint8), (1 << 64) - 1
    for i in range(out.size):
        state = (state * 6364136223846793005 + 1442695040888963407) & mask
        out[i] = (state >> 33) & 0xFF
    return out.reshape(size, size, 3)


def box_blur_8x8(image: np.ndarray) -> np.ndarray:
    """Mean over offsets -4..3 in both directions, edges clamped, integer division."""
    h, w = image.shape[:2]
    total = np.zeros(image.shape, np.int64)
    for dy in range(-4, 4):
        for dx in range(-4, 4):
            ys, xs = np.clip(np.arange(h) + dy, 0, h - 1), np.clip(np.arange(w) + dx, 0, w - 1)
            total += image[ys][:, xs]
    return (total // 64).astype(np.uint8)


def sharpen(image: np.ndarray) -> np.ndarray:
    """[0 -1 0; -1 5 -1; 0 -1 0], a missing neighbour replaced by the centre, clamped to 0..255."""
    x = image.astype(np.int64)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    out = 5 * x - padded[:-2, 1:-1] - padded[2:, 1:-1] - padded[1:-1, :-2] - padded[1:-1, 2:]
    return np.clip(out, 0, 255).astype(np.uint8)


def sha256(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


# (name, source, distorted, sha256 prefix of source, of distorted, C++ score, tolerance)
CASES = [
    ("uniform_shift_1_32x32", lambda: uniform(128, 32), lambda: uniform(129, 32), "753412db", "9bfd6cf2", 97.7492143,
     2.5),
    ("uniform_shift_5_32x32", lambda: uniform(128, 32), lambda: uniform(133, 32), "753412db", "51b9f0ae", 98.80827382,
     2.5),
    ("uniform_shift_10_64x64", lambda: uniform(128), lambda: uniform(138), "2203a98f", "e802fe3a", 80.24289393, 2.5),
    ("gradient_vs_uniform_64x64", gradient_h, lambda: uniform(128), "bfcfaa06", "2203a98f", -64.56872148, 0.002),
    ("noise_vs_sharpen_64x64", lambda: noise(999), lambda: sharpen(noise(999)), "53f592ab", "4ad3cfe3", -5.81017556,
     0.002),
    ("gradient_vs_boxblur8x8_64x64", gradient_h, lambda: box_blur_8x8(gradient_h()), "bfcfaa06", "cceefcd9",
     94.34090315, 0.3),
    ("edge_vs_boxblur8x8_64x64", edge_vertical, lambda: box_blur_8x8(edge_vertical()), "f0d003b6", "cbe40f4a",
     24.27333552, 0.3),
]


@pytest.mark.parametrize("name,source,distorted,source_sha,distorted_sha,expected,tolerance", CASES,
                         ids=[c[0] for c in CASES])
def test_matches_cpp_reference(name, source, distorted, source_sha, distorted_sha, expected, tolerance):
    a, b = source(), distorted()
    assert sha256(a).startswith(source_sha) and sha256(b).startswith(distorted_sha), "not the scored inputs"
    assert ssimulacra2(a, b) == pytest.approx(expected, abs=tolerance)


def test_identical_images_score_100_and_registered():
    image = noise(42)
    assert ssimulacra2(image, image) == 100.0
    info = get_metric("ssimulacra2")
    assert info.lower_better is False and info.compute is ssimulacra2 and info.range == (None, 100.0)


def test_recursive_gaussian_is_a_normalised_gaussian_of_sigma_1_5():
    impulse = np.zeros((41, 41))
    impulse[20, 20] = 1.0
    response = blur(impulse)
    assert response.sum() == pytest.approx(1.0, abs=1e-9)
    offsets = np.arange(41) - 20
    assert (response.sum(axis=0) * offsets ** 2).sum() == pytest.approx(1.5 ** 2, rel=0.02)
    assert recursive_gaussian()[0] == 5


def test_too_small_or_mismatched():
    assert np.isnan(ssimulacra2(uniform(1, 7), uniform(2, 7)))
    with pytest.raises(ValueError, match="shape mismatch"):
        ssimulacra2(uniform(1, 16), uniform(1, 32))
