"""The stablecodec adapter on its tiny random-weights network: real bytes, decoding from bytes alone, header
checks before allocation, damaged streams, rate points, weights."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from baselines.stablecodec import bitstream
from baselines.stablecodec.bitstream import Header
from baselines.stablecodec.codec import StableCodec, load_file
from cdc_bench.codecs.base import BitstreamError, CodecConfigError, CodecUnavailable
from cdc_bench.errors import WeightsMissing

REPO = Path(__file__).resolve().parents[3]


def image(h=48, w=72):
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 / w, yy * 255 / h, 128 + 80 * np.sin(xx / 5.0)], -1)
    return np.clip(arr, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def codec():
    return StableCodec({"weights": "random", "max_pixels": 256 * 256})


@pytest.fixture(scope="module")
def stream(codec):
    return codec.encode(image(), 2).data


def test_round_trip_in_a_fresh_process_from_the_bytes_alone(codec, stream, tmp_path):
    here = codec.decode(stream)
    assert here.shape == (48, 72, 3) and here.dtype == np.uint8 and here.std() > 0
    (tmp_path / "s.bin").write_bytes(stream)
    script = ("import sys, numpy as np; from pathlib import Path; from baselines.stablecodec.codec import StableCodec;"
              "out = StableCodec({'weights': 'random', 'max_pixels': 65536}).decode(Path(sys.argv[1]).read_bytes());"
              "np.save(sys.argv[2], out)")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.bin"), str(tmp_path / "out.npy")], check=True,
                   cwd=REPO, capture_output=True, timeout=600)
    assert np.array_equal(np.load(tmp_path / "out.npy"), here)


def test_the_stream_is_our_header_and_two_real_strings(codec, stream):
    header, strings = bitstream.read(stream, "t", codec.check_size)
    assert header == Header(2, 48, 72, True) and header.z_shape == (1, 1)
    assert len(strings) == 2 and all(len(s[0]) >= 8 and len(s[0]) % 4 == 0 for s in strings)
    assert len(stream) == 2 + 3 + 2 + 1 + sum(1 + len(s[0]) + (len(s[0]) > 127) for s in strings)


def test_encoding_is_deterministic_and_the_rate_is_in_the_header(codec, stream):
    assert codec.encode(image(), 2).data == stream
    other = codec.encode(image(), 32).data  # one random network for all rate points; the header differs
    assert bitstream.read(other, "t", codec.check_size)[0].lam == 32 and other[5:] == stream[5:]


@pytest.mark.parametrize("cut", [1, 2, 4, 6, 8, 12, 40, -5, -1])
def test_truncated_streams_are_bitstream_errors(codec, stream, cut):
    with pytest.raises(BitstreamError):
        codec.decode(stream[:cut])


@pytest.mark.parametrize("offset, value, needle", [
    (0, ord("X"), "bad magic"), (2, 9, "version 9"), (3, 0x01, "unknown flags"), (4, 5, "lambda 5"),
])
def test_damaged_header_fields_are_named(codec, stream, offset, value, needle):
    bad = bytearray(stream)
    bad[offset] = value
    with pytest.raises(BitstreamError, match=needle):
        codec.decode(bytes(bad))


def test_sizes_are_checked_before_anything_is_allocated(codec):
    huge = bitstream.write(Header(2, 40000, 40000, True), [[b"\0" * 8], [b"\0" * 8]])
    with pytest.raises(BitstreamError, match="too large"):
        codec.decode(huge)
    with pytest.raises(BitstreamError, match="height 0"):
        codec.decode(bytes(huge[:5]) + b"\x00\x01" + huge[8:])


def test_string_count_lengths_and_trailing_bytes_are_checked(codec, stream):
    one = bitstream.write(Header(2, 48, 72, True), [[b"\0" * 8]])
    with pytest.raises(BitstreamError, match="1 strings"):
        codec.decode(one)
    with pytest.raises(BitstreamError, match="trailing"):
        codec.decode(stream + b"\0")
    odd = bitstream.write(Header(2, 48, 72, True), [[b"\0" * 9], [b"\0" * 8]])
    with pytest.raises(BitstreamError, match="32-bit words"):
        codec.decode(odd)


def test_a_random_weights_stream_is_refused_by_a_pretrained_decoder(stream, tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path))
    with pytest.raises(BitstreamError, match="weights=random"):
        StableCodec().decode(stream)


def test_a_pretrained_decoder_never_downloads_and_names_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path))
    data = bitstream.write(Header(8, 48, 72, False), [[b"\0" * 8], [b"\0" * 8]])
    with pytest.raises(WeightsMissing, match="elic_official.pth"):
        StableCodec().decode(data)


def test_rate_points_and_required_weights():
    codec = StableCodec()
    assert codec.validate_rate("12") == 12
    with pytest.raises(CodecConfigError, match="released"):
        codec.validate_rate(5)
    names = codec.required_weights([2, 32])
    assert names == ["stablecodec/ft2", "stablecodec/ft32", "stablecodec/elic", "stablecodec/sd-turbo"]
    assert StableCodec({"sd_turbo": "/some/folder"}).required_weights([2])[-1] == "stablecodec/elic"
    assert StableCodec({"weights": "random"}).required_weights([2]) == []
    assert StableCodec.smoke_options == {"weights": "random"}


def test_tile_options_are_checked():
    with pytest.raises(CodecConfigError, match="overlap"):
        StableCodec({"latent_tile": 16, "latent_tile_overlap": 16})


class Pickled:
    pass


def test_a_checkpoint_that_needs_pickled_code_is_refused(tmp_path):
    import torch

    torch.save({"state_dict_codec": Pickled()}, tmp_path / "bad.pkl")
    with pytest.raises(CodecUnavailable, match="weights_only=True"):
        load_file(tmp_path / "bad.pkl")
    torch.save({"state_dict_codec": {"a": torch.zeros(1)}}, tmp_path / "good.pkl")
    assert set(load_file(tmp_path / "good.pkl")) == {"state_dict_codec"}
