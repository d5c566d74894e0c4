"""The bad-input corpus: every odd image becomes 8-bit RGB with a note, or a clear error."""

import numpy as np
import pytest
from PIL import Image

from cdc_bench.datasets.images import ImageReadError, Preprocess, center_crop, load_image, read_image

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


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_becomes_rgb_and_says_so(tmp_path, suffix):
    cmyk = Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert("CMYK")
    path = tmp_path / f"c{suffix}"
    cmyk.save(path, **({"quality": 100} if suffix == ".jpg" else {}))
    got, notes = read_image(path)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
        assert np.array_equal(got, np.asarray(img.convert("RGB")))
    assert notes == [f"c{suffix}: CMYK converted to RGB"]


def test_grey_with_alpha_drops_alpha_and_says_so(tmp_path):
    arr = RNG.integers(0, 256, (6, 7, 2), dtype=np.uint8)
    got, notes = read_image(_save(Image.fromarray(arr, "LA"), tmp_path / "la.png"))
    assert np.array_equal(got, np.repeat(arr[..., :1], 3, axis=2))
    assert "alpha channel dropped (LA -> RGB)" in notes[0]


def test_float_image_is_rounded_and_its_range_is_noted(tmp_path):
    arr = np.array([[0.4, 254.6], [-3.0, 300.0]], dtype=np.float32)
    got, notes = read_image(_save(Image.fromarray(arr, "F"), tmp_path / "f.tif"))
    assert got[..., 0].tolist() == [[0, 255], [0, 255]] and got.shape == (2, 2, 3)
    assert "values -3..300" in notes[0] and "clipped" in notes[0]
    unit = RNG.random((4, 4)).astype(np.float32)
    _, notes = read_image(_save(Image.fromarray(unit, "F"), tmp_path / "unit.tif"))
    assert "0..1 image" in notes[0]


def test_float_image_with_nan_is_refused_by_name(tmp_path):
    arr = np.array([[1.0, np.nan], [np.inf, 2.0]], dtype=np.float32)
    with pytest.raises(ImageReadError, match=r"nan\.tif: floating-point image with 2 NaN or infinite pixels"):
        read_image(_save(Image.fromarray(arr, "F"), tmp_path / "nan.tif"))


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


# --- hostile and unusual inputs: each is named, none is silently used differently -------------------------


def _png(width: int, height: int, bit_depth: int = 1, colour: int = 0, idat: bytes | None = None) -> bytes:
    """A PNG built by hand: a header claiming ``width x height`` and (by default) all-zero pixel data, which
    compresses to almost nothing, so a file of a few kB decodes to any size."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    if idat is None:
        row = 1 + (width * bit_depth + 7) // 8  # filter byte + packed samples
        idat = zlib.compress(b"\0" * (row * height), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_small_png_that_decodes_to_144_mpx_is_too_large_before_decoding(tmp_path, monkeypatch):
    monkeypatch.delenv("CDC_BENCH_MAX_PIXELS", raising=False)
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(12000, 12000))
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: too large (144,000,000 px > limit of 64,000,000 px")
    assert "CDC_BENCH_MAX_PIXELS" in message


def test_header_claiming_60000_squared_names_the_file(tmp_path):
    # Above twice the limit Pillow itself refuses (DecompressionBombError, which used to escape unnamed).
    path = tmp_path / "huge.png"
    path.write_bytes(_png(60000, 60000, idat=b""))
    with pytest.raises(ImageReadError, match=r"huge\.png: too large \(3,600,000,000 px > limit of 64,000,000 px"):
        read_image(path)


def test_pixel_limit_from_argument_and_environment(tmp_path, monkeypatch):
    path = _save(Image.fromarray(RNG.integers(0, 256, (100, 100, 3), dtype=np.uint8)), tmp_path / "p.png")
    with pytest.raises(ImageReadError, match=r"p\.png: too large \(10,000 px > limit of 9,999 px"):
        read_image(path, max_pixels=9999)
    assert read_image(path, max_pixels=10_000)[0].shape == (100, 100, 3)
    monkeypatch.setenv("CDC_BENCH_MAX_PIXELS", "5000")
    with pytest.raises(ImageReadError, match="too large"):
        load_image(path)
    assert load_image(path, max_pixels=0)[0].shape == (100, 100, 3)  # 0: no limit; the argument wins
    with pytest.raises(ImageReadError, match="limit of 2,000 px"):
        # Pillow's own refusal (above 2x the limit it is given) says the same as our check.
        read_image(path, max_pixels=2000)
    monkeypatch.setenv("CDC_BENCH_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="CDC_BENCH_MAX_PIXELS='lots'"):
        read_image(path)
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS > 10_000  # Pillow's global restored


def test_raising_the_limit_reads_images_pillow_would_refuse(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # as if Pillow's default were tiny
    path = _save(Image.new("RGB", (60, 60), (9, 8, 7)), tmp_path / "ok.png")
    assert read_image(path, max_pixels=10_000)[0].shape == (60, 60, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_animated_gif_uses_frame_zero_and_says_so(tmp_path):
    frames = [Image.new("RGB", (10, 8), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    got, notes = read_image(path)
    assert got.shape == (8, 10, 3) and got[0, 0].tolist() == [255, 0, 0]
    assert any("anim.gif: 3 frames (GIF); only the first frame is used" in n for n in notes)


def test_multi_frame_tiff_uses_frame_zero_and_says_so(tmp_path):
    pages = [Image.fromarray(np.full((6, 7, 3), v, np.uint8)) for v in (10, 200)]
    path = tmp_path / "pages.tiff"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    got, notes = read_image(path)
    assert (got == 10).all()
    assert notes == ["pages.tiff: 2 frames (TIFF); only the first frame is used"]


def test_single_frame_gif_has_no_frame_note(tmp_path):
    got, notes = read_image(_save(Image.new("RGB", (4, 4), (0, 0, 0)), tmp_path / "one.gif"))
    assert got.shape == (4, 4, 3) and not any("frames" in n for n in notes)


def test_exif_orientation_is_not_applied_and_the_note_says_so(tmp_path):
    arr = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.png"
    Image.fromarray(arr).save(path, exif=exif)
    got, notes = read_image(path)
    assert np.array_equal(got, arr)  # stored pixels, not transposed (what CompressAI and clean-fid read)
    assert notes == ["rotated.png: EXIF orientation 6 (rotated 90° clockwise for display) ignored: the pixels "
                     "are used as stored, as CompressAI and clean-fid read them"]
    exif[0x0112] = 1
    Image.fromarray(arr).save(path, exif=exif)
    assert read_image(path)[1] == []


def test_dangling_symlink_is_named(tmp_path):
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "deleted.png")
    with pytest.raises(ImageReadError, match=r"gone\.png: dangling symbolic link \(its target .*deleted\.png"):
        read_image(link)


def test_resize_crop_covers_any_box():
    from cdc_bench.datasets.images import resize_crop

    image = RNG.integers(0, 256, (50, 80, 3), dtype=np.uint8)
    assert resize_crop(image, 30, 20).shape == (20, 30, 3)
    assert resize_crop(image, 100, 100).shape == (100, 100, 3)
    assert np.array_equal(resize_crop(image, 80, 50), image)  # already the size: untouched
    assert np.array_equal(Preprocess.parse("resize-crop:40").apply(image), resize_crop(image, 40, 40))


def test_probe_checks_headers_without_decoding(tmp_path):
    from cdc_bench.datasets.images import probe_image

    frames = [Image.new("RGB", (10, 8), c) for c in ((1, 2, 3), (4, 5, 6))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert probe_image(tmp_path / "anim.gif") == ["anim.gif: 2 frames (GIF); only the first frame is used"]
    (tmp_path / "bomb.png").write_bytes(_png(12000, 12000, idat=b"not even valid data"))
    with pytest.raises(ImageReadError, match=r"bomb\.png: too large"):
        probe_image(tmp_path / "bomb.png")
    good = _save(Image.new("RGB", (5, 5)), tmp_path / "g.png")
    assert probe_image(good) == []
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ImageReadError, match=r"junk\.png: cannot read image"):
        probe_image(tmp_path / "junk.png")


def test_a_png_whose_image_data_crc_is_wrong_is_refused(tmp_path):
    import struct

    path = tmp_path / "bad.png"
    Image.fromarray(np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)).save(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT")
    data[at + 4 + struct.unpack(">I", data[at - 4:at])[0]] ^= 0xFF  # the IDAT chunk's CRC, data untouched
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="bad.png: corrupt PNG .*checksum"):
        read_image(path)


def test_pillows_exif_warning_names_the_file_and_goes_into_the_notes(tmp_path):
    import struct
    import warnings

    tiff = (b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x010E, 2, 100, 1000)  # data past the end
            + struct.pack("<I", 0))
    path = tmp_path / "broken-exif.jpg"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, exif=b"Exif\x00\x00" + tiff)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing printed without the file name
        _, notes = read_image(path)
    assert any(n.startswith("broken-exif.jpg: ") and "tag" in n.lower() for n in notes), notes


@pytest.mark.parametrize("make", ["png16", "gif", "corrupt-png", "garbage"])
def test_reading_shipped_bytes_equals_reading_the_file(tmp_path, make):
    """A Dask worker is sent an image's bytes: same pixels, same notes and same errors, all named by the file."""
    path = tmp_path / ("a.gif" if make == "gif" else "a.png")
    if make == "png16":
        _write_png16(path, RNG.integers(0, 65536, (5, 4, 3), dtype=np.uint16))
    elif make == "gif":
        frames = [Image.fromarray(RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)) for _ in range(2)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    else:
        Image.fromarray(RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(path)
        raw = bytearray(path.read_bytes())
        if make == "corrupt-png":
            raw[raw.index(b"IDAT") + 6] ^= 0xFF
        else:
            raw[:] = b"not an image at all"
        path.write_bytes(bytes(raw))
    data = path.read_bytes()
    try:
        expected = load_image(path, "none")
    except ImageReadError as err:
        with pytest.raises(ImageReadError) as shipped:
            load_image(path, "none", data=data)
        assert str(shipped.value) == str(err) and str(path) in str(err)
        return
    got = load_image(path, "none", data=data)
    assert np.array_equal(got[0], expected[0]) and got[1] == expected[1] and expected[1]


def _write_tiff16_rgb(path, arr) -> None:
    """A baseline uncompressed 16-bit RGB TIFF, by hand: Pillow cannot write one and tifffile is no dependency."""
    import struct

    h, w, _ = arr.shape
    pixels = arr.astype("<u2").tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, 8 + len(pixels)), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pixels))]
    ifd = 8 + len(pixels) + 6
    body = b"II*\0" + struct.pack("<I", ifd) + pixels + struct.pack("<3H", 16, 16, 16)
    body += struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1
                                                         else struct.pack("<I", value))
    path.write_bytes(body + struct.pack("<I", 0))


def test_16bit_rgb_tiff_is_converted_and_says_so(tmp_path):
    arr = np.zeros((4, 5, 3), dtype=np.uint16)
    arr[0, 0] = (65535, 32768, 257)
    _write_tiff16_rgb(tmp_path / "rgb16.tiff", arr)
    got, notes = read_image(tmp_path / "rgb16.tiff")
    assert got.shape == (4, 5, 3) and got[0, 0].tolist() == [255, 128, 1]
    assert notes == ["rgb16.tiff: 16-bit RGB converted to 8-bit"]


def test_a_non_srgb_icc_profile_is_ignored_and_the_note_names_it(tmp_path):
    from PIL import ImageCms

    arr = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()   # a profile that is not sRGB
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(arr).save(tmp_path / "lab.png", icc_profile=lab)
    Image.fromarray(arr).save(tmp_path / "srgb.png", icc_profile=srgb)
    got, notes = read_image(tmp_path / "lab.png")
    assert np.array_equal(got, arr)   # the pixels as stored: no colour conversion
    assert len(notes) == 1 and "embedded ICC profile" in notes[0] and "not converted to sRGB" in notes[0]
    got, notes = read_image(tmp_path / "srgb.png")
    assert np.array_equal(got, arr) and notes == []   # sRGB-tagged pixels are what the codecs assume
