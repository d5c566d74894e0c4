import numpy as np
import pytest

from cdc_bench.codecs.base import (BitstreamError, Codec, CodecConfigError, CodecError, Encoded, Option,
                             canonical_options, check_image, pad_to_multiple, parse_value)


class Dummy(Codec):
    name = "dummy"
    rate_points = (10, 20)
    option_specs = {"subsampling": Option("420", "chroma", choices=("420", "444")), "fast": Option(False),
                    "gamma": Option(0.8, range=(0.0, None)), "steps": Option(65, range=(1, 1000))}

    def _encode(self, image, rate):
        return Encoded(image.tobytes()[:4] + bytes([int(rate)]), estimated_bits=3.0, info={"steps": 2})

    def _decode(self, data):
        if data[-1] == 0:
            raise ValueError("a library's own error")
        if data[-1] == 1:
            return np.zeros((2, 2), np.uint8)
        return np.zeros((1, 1, 3), np.uint8)


def test_options_are_parsed_to_the_type_of_their_default():
    codec = Dummy({"fast": "yes", "gamma": "0.5", "steps": "17", "subsampling": "444"})
    assert codec.options == {"fast": True, "gamma": 0.5, "steps": 17, "subsampling": "444"}


def test_unknown_option_lists_valid_ones():
    with pytest.raises(CodecConfigError, match="fast, gamma, steps, subsampling"):
        Dummy({"qualty": "3"})


@pytest.mark.parametrize("key,value,valid", [("steps", "many", "1..1000"), ("steps", "0", "1..1000"),
                                             ("gamma", "nan", ">= 0"), ("gamma", "inf", ">= 0"),
                                             ("gamma", "-1", ">= 0"), ("subsampling", "411", "420, 444")])
def test_bad_option_value_names_the_option_and_the_valid_range(key, value, valid):
    with pytest.raises(CodecConfigError, match=rf"dummy\.{key}.*{valid}"):
        Dummy({key: value})


def test_parse_value():
    assert parse_value("off", True) is False
    assert parse_value("3", 1.5) == 3.0 and isinstance(parse_value("3", 1.5), float)
    for bad in ("maybe",):
        with pytest.raises(ValueError):
            parse_value(bad, True)
    with pytest.raises(ValueError):
        parse_value("nan", 0.5)


def test_default_rate_validation_converts_to_the_type_of_the_defaults():
    assert Dummy().validate_rate("15") == 15
    with pytest.raises(CodecConfigError, match="rate point"):
        Dummy().validate_rate("fifteen")


def test_the_base_maps_errors_and_returns_what_the_encoder_measured():
    codec = Dummy()
    image = np.full((2, 2, 3), 7, np.uint8)
    encoded = codec.encode(image, 5)
    assert encoded.data[-1] == 5 and encoded.estimated_bits == 3.0 and encoded.info == {"steps": 2}
    with pytest.raises(BitstreamError, match="a library's own error"):
        codec.decode(b"\x00")
    with pytest.raises(BitstreamError, match="invalid image"):
        codec.decode(b"\x01")
    with pytest.raises(BitstreamError, match="empty"):
        codec.decode(b"")
    with pytest.raises(CodecError):
        codec.encode(np.zeros((2, 2), np.uint8), 5)


def test_canonical_options_is_order_independent_and_refuses_nan():
    assert canonical_options({"b": 1, "a": "x"}) == canonical_options({"a": "x", "b": 1}) == '{"a":"x","b":1}'
    with pytest.raises(ValueError):
        canonical_options({"gamma": float("nan")})


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
