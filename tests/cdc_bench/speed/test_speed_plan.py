"""``speed.plan``: parsing sizes and steps, the synthetic and real test images, option defaults."""

from __future__ import annotations

import numpy as np
import pytest

from cdc_bench.speed import parse_size, parse_sizes, parse_steps, synthetic_image
from cdc_bench.speed.plan import image_at, option_defaults


def test_parse_size_steps():
    assert parse_size("768x512") == (768, 512)
    assert parse_sizes("256x256, 768X512") == [(256, 256), (768, 512)]
    assert parse_steps("1,2,4,65") == [1, 2, 4, 65]
    for bad in ("768", "0x5", "ax4", "-1x4"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            parse_size(bad)
    for bad in ("0,1", "a", "", "2,2"):
        with pytest.raises(ValueError):
            parse_steps(bad)


def test_synthetic_image_is_deterministic_and_textured():
    a, b = synthetic_image(48, 32), synthetic_image(48, 32)
    assert a.shape == (32, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert a.std() > 20


def test_image_at_covers_and_centre_crops(tmp_path):
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.fromarray(synthetic_image(90, 30)).save(path)
    out = image_at(path, 40, 40)
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8


def test_option_defaults_read_the_declarations():
    from cdc_bench.codecs.registry import get_codec_class

    assert option_defaults(get_codec_class("speedtoy")) == {"steps": 4, "channels": 8}
