"""The bad-input corpus: every odd image becomes 8-bit RGB with a note, or a clear error."""

import numpy as np
import pytest
from PIL import Image

from cdc_bench.images import ImageReadError, Preprocess, center_crop, load_image, read_image

RNG = np.random.default_rng(0)


def _save(img: Image.Image, path):
    img.save(path)
    return path


def test_rgb_png_is_read_unchanged(tmp_path):
    arr = RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    got, notes = read_image(_save(Image.fromarray(arr), tmp_path / "a.png"))
    assert np.array_equal(got, arr) and notes == []


def test_grayscale_becomes_rgb(tmp_path):
    arr = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
    got, notes = read_image(_save(Image.fromarray(arr, "L"), tmp_path / "g.png"))
    assert got.shape == (9, 11, 3) and np.array_equal(got[..., 1], arr)
    assert "grayscale" in notes[0]


def test_rgba_drops_alpha_and_says_so(tmp_path):
    arr = RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    got, notes = read_image(_save(Image.fromarray(arr, "RGBA"), tmp_path / "a.png"))
    assert np.array_equal(got, arr[..., :3])
    assert "alpha" in notes[0]


def test_palette_becomes_rgb(tmp_path):
    img = Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert("P")
    got, notes = read_image(_save(img, tmp_path / "p.png"))
    assert np.array_equal(got, np.asarray(img.convert("RGB")))
    assert "palette" in notes[0]


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 65535], [32768, 257]], dtype=np.uint16)
    got, notes = read_image(_save(Image.fromarray(arr), tmp_path / "g16.png"))
    assert got[..., 0].tolist() == [[0, 255], [128, 1]]
    assert "16-bit" in notes[0]


def _write_png16(path, arr):
    """A 16-bit RGB PNG written by hand: neither Pillow nor imageio can write one."""
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_16bit_rgb_png_is_converted(tmp_path):
    arr = np.zeros((4, 4, 3), dtype=np.uint16)
    arr[0, 0] = (65535, 32768, 257)
    _write_png16(tmp_path / "rgb16.png", arr)
    got, notes = read_image(tmp_path / "rgb16.png")
    assert got.dtype == np.uint8 and got[0, 0].tolist() == [255, 128, 1]
    assert "16-bit" in notes[0]


def test_truncated_and_garbage_files_raise_clear_errors(tmp_path):
    good = _save(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)), tmp_path / "t.png")
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name in ("trunc.png", "junk.png", "absent.png"):
        with pytest.raises(ImageReadError, match=name):
            read_image(tmp_path / name)


def test_one_pixel_image(tmp_path):
    got, _ = read_image(_save(Image.new("RGB", (1, 1), (1, 2, 3)), tmp_path / "1.png"))
    assert got.tolist() == [[[1, 2, 3]]]


def test_preprocessing_protocols():
    image = RNG.integers(0, 256, (512, 768, 3), dtype=np.uint8)
    assert Preprocess.parse("none").apply(image) is image
    crop = Preprocess.parse("center-crop:256").apply(image)
    assert np.array_equal(crop, image[128:384, 256:512])
    resized = Preprocess.parse("resize-crop:384").apply(image)
    assert resized.shape == (384, 384, 3)
    assert str(Preprocess.parse("resize-crop:768")) == "resize-crop:768"
    assert center_crop(image[:10, :10], 256).shape == (10, 10, 3)
    with pytest.raises(ValueError, match="center-crop:N"):
        Preprocess.parse("crop-ish")


def test_load_image_applies_preprocessing(tmp_path):
    arr = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    path = _save(Image.fromarray(arr), tmp_path / "x.png")
    got, _ = load_image(path, "center-crop:20")
    assert np.array_equal(got, arr[10:30, 20:40])
