"""The README's "Adding a codec" example works end to end: registered, listed, coded, validated, removed."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.png_palette import PalettePNG
from cdc_bench.codecs.base import BitstreamError, CodecError
from cdc_bench.codecs.registry import create_codec, get_codec_class, register, unregister
from cdc_bench.metrics.distortion import psnr


@pytest.fixture()
def registered():
    register(PalettePNG)
    yield
    unregister(PalettePNG.name)


def test_example_adapter_round_trips_and_rate_rises_with_colours(registered):
    assert get_codec_class("png-palette") is PalettePNG
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:48, 0:64]
    image = np.clip(np.stack([x * 4, y * 5, (x + y) * 2], -1) + rng.normal(0, 3, (48, 64, 3)), 0, 255)
    image = image.astype(np.uint8)
    codec = create_codec("png-palette", {"dither": "false"})
    sizes, quality = [], []
    for colours in (4, 32, 256):
        data = codec.encode(image, colours).data
        assert data.startswith(b"\x89PNG")
        recon = codec.decode(data)
        assert recon.shape == image.shape and len(np.unique(recon.reshape(-1, 3), axis=0)) <= colours
        sizes.append(len(data))
        quality.append(psnr(image, recon))
    assert sizes == sorted(sizes) and quality == sorted(quality)
    with pytest.raises(CodecError, match="2..256"):
        codec.validate_rate(1)
    with pytest.raises(CodecError, match="dither"):
        create_codec("png-palette", {"dither": "maybe"})
    with pytest.raises(BitstreamError):
        codec.decode(data[: len(data) // 2])
