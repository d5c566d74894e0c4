"""Classical codecs: real round trips on a small synthetic image, any image size, bad bitstreams, options."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from baselines.classical import AVIF, HEVC, JPEG, JPEG2000, JPEGXL, WebP
from cdc_bench.codecs.base import BitstreamError, CodecError
from cdc_bench.metrics.distortion import psnr
from cdc_bench.codecs.registry import create_codec, get_codec_class

CODECS = [JPEG, WebP, JPEG2000, JPEGXL, AVIF, HEVC]
#: how each codec's bytes begin: the bitstream is the library's own file format
SIGNATURES = {
    "jpeg": (0, b"\xff\xd8\xff"),
    "webp": (8, b"WEBP"),
    "jpeg2000": (0, b"\xff\x4f\xff\x51"),  # J2K codestream: SOC then SIZ
    "jpegxl": (0, b"\xff\x0a"),  # bare JXL codestream
    "avif": (4, b"ftypavif"),
    "hevc": (4, b"ftyphei"),  # heic, or heix for 4:4:4
}


def _test_image(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth colour scene with soft edges and mild texture: compresses like a photograph, not like noise."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([
        128 + 90 * np.sin(x / 11.0) * np.cos(y / 17.0),
        128 + 80 * np.cos((x + y) / 23.0),
        60 + 150 * ((x // 24 + y // 24) % 2),
    ], axis=-1)
    img = gaussian_filter(img, (1.5, 1.5, 0)) + rng.normal(0, 2, img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return _test_image()


def _three_rates(cls) -> list:
    points = list(cls.rate_points)
    return [points[0], points[len(points) // 2], points[-1]]


@pytest.mark.parametrize("cls", CODECS, ids=lambda c: c.name)
def test_registered_and_available(cls):
    assert get_codec_class(cls.name) is cls
    status = cls.availability()
    assert status.ok, status.reason
    assert cls.details and cls.rate_points and all(spec.help for spec in cls.option_specs.values())


@pytest.mark.parametrize("cls", CODECS, ids=lambda c: c.name)
def test_round_trip_quality_rises_with_rate(cls, image):
    codec = cls()
    results = []
    for rate in _three_rates(cls):
        data = codec.encode(image, rate).data
        assert isinstance(data, bytes)
        offset, magic = SIGNATURES[cls.name]
        assert data[offset:offset + len(magic)] == magic
        # The decoder works from the bytes alone: a fresh instance decodes them.
        recon = cls().decode(data)
        assert recon.shape == image.shape and recon.dtype == np.uint8
        bpp = 8 * len(data) / (image.shape[0] * image.shape[1])
        results.append((bpp, psnr(image, recon)))
    bpps, psnrs = zip(*results)
    assert 0 < bpps[0] < bpps[1] < bpps[2]
    assert psnrs[0] < psnrs[1] < psnrs[2]
    assert psnrs[2] > 36.0  # the highest default point is close to transparent on this image
    flat = np.broadcast_to(image.mean(axis=(0, 1)).round().astype(np.uint8), image.shape)
    assert psnrs[0] > psnr(image, flat)  # and the lowest carries more than the mean colour


@pytest.mark.parametrize("cls", CODECS, ids=lambda c: c.name)
def test_deterministic(cls, image):
    codec = cls()
    rate = _three_rates(cls)[1]
    first, second = codec.encode(image, rate).data, codec.encode(image, rate).data
    assert first == second
    np.testing.assert_array_equal(codec.decode(first), codec.decode(second))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (17, 33), (65, 31)])
@pytest.mark.parametrize("cls", CODECS, ids=lambda c: c.name)
def test_any_image_size(cls, shape):
    image = _test_image(*shape, seed=sum(shape))
    codec = cls()
    rate = cls.rate_points[-1]
    recon = codec.decode(codec.encode(image, rate).data)
    assert recon.shape == image.shape and recon.dtype == np.uint8
    if shape == (1, 1):
        assert np.abs(recon.astype(int) - image.astype(int)).max() <= 8


@pytest.mark.parametrize("cls", CODECS, ids=lambda c: c.name)
def test_truncated_corrupt_and_foreign_bytes(cls, image):
    codec = cls()
    data = codec.encode(image, _three_rates(cls)[1]).data
    for bad in (data[: len(data) // 2], data[:12], b"", b"\x00" * 64, b"not an image at all" * 5):
        with pytest.raises(BitstreamError):
            codec.decode(bad)
    foreign = (WebP if cls is JPEG else JPEG)().encode(image, 50).data
    with pytest.raises(BitstreamError):
        codec.decode(foreign)


def test_a_size_field_beyond_the_pixel_limit_is_refused_before_decoding(image, monkeypatch):
    """A corrupt JPEG SOF claiming 9000 x 9000 (81 Mpx: Pillow warns only above 89 Mpx and refuses only above
    179 Mpx, so it would allocate the image) is refused from the header, naming the input pixel limit."""
    monkeypatch.delenv("CDC_BENCH_MAX_PIXELS", raising=False)
    data = bytearray(JPEG().encode(image, 75).data)
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (9000).to_bytes(2, "big") * 2  # height, width
    with pytest.raises(BitstreamError, match="9000x9000 image, beyond the input pixel limit 64000000"):
        JPEG().decode(bytes(data))
    monkeypatch.setenv("CDC_BENCH_MAX_PIXELS", "1000")
    with pytest.raises(BitstreamError, match="pixel limit 1000"):
        JPEG().decode(JPEG().encode(image, 75).data)


@pytest.mark.parametrize("cls", CODECS, ids=lambda c: c.name)
def test_bad_rate_and_options(cls, image):
    with pytest.raises(CodecError, match="rate point"):
        cls().encode(image, -5).data
    with pytest.raises(CodecError, match="rate point"):
        cls().encode(image, "high").data
    with pytest.raises(CodecError, match="no option"):
        cls({"no_such_option": 1})


def test_jpeg_matches_compressai_bench_settings(image):
    """CompressAI's jpeg.json / webp.json are Pillow's ``save(format=..., quality=q)``: same bytes here."""
    for cls, fmt in ((JPEG, "JPEG"), (WebP, "WEBP")):
        for q in (5, 50, 95):
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format=fmt, quality=q)
            assert cls().encode(image, q).data == buf.getvalue()


def test_jpeg_subsampling_option(image):
    from PIL import JpegImagePlugin

    default, full = JPEG(), create_codec("jpeg", {"subsampling": "444"})
    assert full.options["subsampling"] == "444"
    d420, d444 = default.encode(image, 75).data, full.encode(image, 75).data
    assert d420 != d444
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(d420))) == 2  # 4:2:0
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(d444))) == 0  # 4:4:4
    assert psnr(image, full.decode(d444)) > psnr(image, default.decode(d420))
    with pytest.raises(CodecError, match="subsampling"):
        JPEG({"subsampling": "411"})


def test_avif_subsampling_option(image):
    d420, d444 = AVIF().encode(image, 60).data, AVIF({"subsampling": "444"}).encode(image, 60).data
    assert d420 != d444
    with pytest.raises(CodecError, match="speed"):
        AVIF({"speed": "11"})


def test_jpeg2000_rate_is_a_compression_ratio():
    image = _test_image(256, 256, seed=3)
    for ratio in (80, 20):
        data = JPEG2000().encode(image, ratio).data
        bpp = 8 * len(data) / image.shape[0] / image.shape[1]
        # OpenJPEG's rate allocation stays at or below the target (24 / ratio bpp), plus main header bytes.
        assert 0.5 * 24 / ratio < bpp <= 24 / ratio + 8 * 200 / image.size * 3
    lossless = JPEG2000({"irreversible": "false"})
    assert lossless.options["irreversible"] is False
    with pytest.raises(CodecError, match="compression ratio"):
        JPEG2000().encode(image, 0.5).data


def test_hevc_is_full_range_bt601_444_single_image(image):
    import pillow_heif

    data = HEVC().encode(image, 32).data
    heif = pillow_heif.open_heif(io.BytesIO(data))
    assert len(heif) == 1 and heif.size == (image.shape[1], image.shape[0])
    assert heif.info["chroma"] == 444
    nclx = heif.info["nclx_profile"]
    assert nclx["matrix_coefficients"] == 6 and nclx["full_range_flag"] == 1
    d420 = HEVC({"chroma": "420"}).encode(image, 32).data
    assert pillow_heif.open_heif(io.BytesIO(d420)).info["chroma"] == 420
    with pytest.raises(CodecError, match="preset"):
        HEVC({"preset": "warp"})
    with pytest.raises(CodecError, match="QP"):
        HEVC().encode(image, 51).data


def test_hevc_rate_falls_with_qp(image):
    """The rate point is a constant QP: each coarser QP gives fewer bytes."""
    sizes = [len(HEVC().encode(image, qp).data) for qp in (20, 26, 32, 38)]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4
