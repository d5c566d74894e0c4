import numpy as np
import pytest

from cdc_bench.codec import (Codec, CodecError, canonical_options, check_image, pad_to_multiple, parse_rate_points,
                             parse_value)


class Dummy(Codec):
    name = "dummy"
    rate_points = (10, 20)
    settings = {"subsampling": "420", "fast": False, "gamma": 0.8, "steps": 65}


def test_options_are_parsed_to_the_type_of_their_default():
    codec = Dummy({"fast": "yes", "gamma": "0.5", "steps": "17", "subsampling": "444"})
    assert codec.options == {"fast": True, "gamma": 0.5, "steps": 17, "subsampling": "444"}


def test_unknown_option_lists_valid_ones():
    with pytest.raises(CodecError, match="fast, gamma, steps, subsampling"):
        Dummy({"qualty": "3"})


def test_bad_option_value_names_the_option():
    with pytest.raises(CodecError, match="dummy.steps"):
        Dummy({"steps": "many"})


def test_parse_value_and_rate_points():
    assert parse_value("off", True) is False
    assert parse_rate_points("10, 50,90", (5, 10)) == [10, 50, 90]
    assert parse_rate_points("0.0032,0.1", (0.0128,)) == [0.0032, 0.1]
    with pytest.raises(ValueError):
        parse_value("maybe", True)


def test_canonical_options_is_order_independent():
    assert canonical_options({"b": 1, "a": "x"}) == canonical_options({"a": "x", "b": 1}) == '{"a":"x","b":1}'


def test_pad_to_multiple_replicates_edges():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = pad_to_multiple(img, 4)
    assert padded.shape == (4, 4, 3)
    assert np.array_equal(padded[:2, :3], img)
    assert np.array_equal(padded[3, 3], img[1, 2])
    assert pad_to_multiple(img, 1, minimum=8).shape == (8, 8, 3)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_check_image_rejects_what_codecs_cannot_take(bad):
    with pytest.raises(CodecError):
        check_image(bad)
