"""Matched bitrates: the search reaches each target within the codec's resolution on real Kodak images."""

import numpy as np
import pytest

from baselines.classical import HEVC, JPEG, JPEG2000, WebP
from cdc_bench.codecs.base import Codec, Encoded, RateDomain
from cdc_bench.errors import CodecConfigError
from cdc_bench.codecs.matching import clear_cache, match_rate


@pytest.fixture(scope="module")
def crop(kodim23):
    return np.ascontiguousarray(kodim23[128:320, 256:512])


def _bpp(codec, image, rate):
    return 8 * len(codec.encode(image, rate).data) / (image.shape[0] * image.shape[1])


@pytest.mark.parametrize("cls", [JPEG, WebP, HEVC], ids=lambda c: c.name)
@pytest.mark.parametrize("target", [0.5, 1.0])
def test_integer_knob_reaches_the_target_within_one_step(cls, crop, target):
    codec = cls()
    found = match_rate(codec, crop, target, "below")
    assert found.met and found.bpp <= target
    assert found.bpp == _bpp(codec, crop, found.rate)  # the row's bpp is a real bitstream's
    # one step further on the knob goes over the target: nothing closer exists below it
    domain = codec.rate_domain()
    step = 1 if _bpp(codec, crop, domain.low) < _bpp(codec, crop, domain.high) else -1
    nxt = found.rate + step
    if domain.low <= nxt <= domain.high:
        assert _bpp(codec, crop, nxt) > target
    assert len(found.probes) <= 2 + int(np.ceil(np.log2(domain.high - domain.low + 1))) + 1


def test_real_knob_bisects_to_fine_resolution(crop):
    codec = JPEG2000()
    found = match_rate(codec, crop, 0.3, "below")
    assert found.met and 0.3 * 0.97 <= found.bpp <= 0.3


def test_nearest_may_go_above_and_is_closer(crop):
    codec = JPEG()
    below, nearest = match_rate(codec, crop, 0.5, "below"), match_rate(codec, crop, 0.5, "nearest")
    assert abs(nearest.bpp - 0.5) <= abs(below.bpp - 0.5)


def test_unreachable_target_is_flagged_not_hidden(crop):
    found = match_rate(JPEG(), crop, 0.001, "below")
    assert not found.met and found.rate == 1 and found.bpp > 0.001


class Points(Codec):
    """Discrete points only (like CDC's lambdas): a lossless-size codec whose bitstream length is the rate."""

    name = "points"
    rate_points = (5, 1, 3)

    def _encode(self, image, rate):
        return Encoded(bytes(int(rate) * 100))

    def _decode(self, data):
        return np.zeros((1, 1, 3), np.uint8)


def test_discrete_points_choose_among_the_listed_ones_and_probes_are_cached():
    clear_cache()
    image = np.zeros((10, 10, 3), np.uint8)  # 100 px: bpp = 8 * rate
    codec = Points()
    assert codec.rate_domain() == RateDomain("points", points=(5, 1, 3))
    first = match_rate(codec, image, 30.0)
    assert first.rate == 3 and first.bpp == 24.0
    calls = []
    original = codec._encode
    codec._encode = lambda image, rate: calls.append(rate) or original(image, rate)
    second = match_rate(codec, image, 41.0)
    assert second.rate == 5 and calls == []  # every probe came from the cache


def test_bad_targets_and_modes_are_config_errors():
    with pytest.raises(CodecConfigError):
        match_rate(Points(), np.zeros((2, 2, 3), np.uint8), float("nan"))
    with pytest.raises(CodecConfigError):
        match_rate(Points(), np.zeros((2, 2, 3), np.uint8), 0.1, "closest")
