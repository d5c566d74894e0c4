"""BPG through bpgenc/bpgdec: the command lines, the unavailable path, and a real round trip where installed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from baselines.bpg import BPG, decode_command, encode_command
from cdc_bench.codecs.base import BitstreamError, CodecError, CodecUnavailable
from cdc_bench.codecs.registry import create_codec, get_codec_class


def test_registered_with_compressai_settings():
    assert get_codec_class("bpg") is BPG
    codec = create_codec("bpg")
    assert codec.options["subsampling"] == "444" and codec.options["hevc"] == "x265"
    assert codec.options["colorspace"] == "ycbcr" and codec.options["bitdepth"] == 8
    assert list(BPG.rate_points) == list(range(47, 11, -5))


def test_encode_command_is_compressai_bench():
    """compressai.utils.bench.codecs.BPG._get_encode_cmd with its defaults (-m 444 -b 8 -c ycbcr -e x265)."""
    cmd = encode_command("bpgenc", 37, dict(BPG().options), "in.png", "out.bpg")
    assert cmd == ["bpgenc", "-o", "out.bpg", "-q", "37", "-f", "444", "-e", "x265", "-c", "ycbcr", "-b", "8",
                   "in.png"]
    opts = dict(BPG().options, subsampling="420", bitdepth=10)
    assert encode_command("/opt/bpgenc", 12, opts, "a.png", "b.bpg")[3:7] == ["-q", "12", "-f", "420"]
    assert decode_command("bpgdec", "b.bpg", "c.png") == ["bpgdec", "-o", "c.png", "b.bpg"]


def test_unavailable_without_binaries_points_to_hevc(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no bpgenc, no bpgdec
    status = BPG.availability()
    assert not status.ok
    assert "bpgenc" in status.reason and "bpgdec" in status.reason
    assert "hevc" in status.fix
    with pytest.raises(CodecUnavailable, match="hevc"):
        BPG().encode(np.zeros((8, 8, 3), np.uint8), 30)
    with pytest.raises(CodecUnavailable):
        BPG().decode(b"BPG\xfb" + bytes(32))


def test_custom_binary_paths_are_checked(tmp_path):
    status = BPG.availability(str(tmp_path / "nope" / "bpgenc"), str(tmp_path / "nope" / "bpgdec"))
    assert not status.ok and "nope" in status.reason


def test_configured_binaries_are_the_ones_checked(tmp_path, monkeypatch):
    """-o bpg.encoder=PATH: an instance checks that path, even where bpgenc/bpgdec are on PATH."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for exe in ("bpgenc", "bpgdec"):
        (fake / exe).write_text("#!/bin/sh\nexit 1\n")
        (fake / exe).chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    assert BPG.availability().ok
    missing = str(tmp_path / "nope" / "bpgenc")
    with pytest.raises(CodecUnavailable, match="nope"):
        BPG({"encoder": missing}).encode(np.zeros((8, 8, 3), np.uint8), 30)
    with pytest.raises(CodecError, match="bpgenc failed with exit code 1"):
        BPG().encode(np.zeros((8, 8, 3), np.uint8), 30)


def test_foreign_bytes_rejected_before_running_anything():
    for bad in (b"", b"\xff\xd8\xff\xe0JFIF", b"BPG"):
        with pytest.raises(BitstreamError, match="BPG signature"):
            BPG()._decode(bad)  # the adapter's own check (the base rejects b"" as empty before it)


def test_option_and_rate_validation():
    with pytest.raises(CodecError, match="subsampling"):
        BPG({"subsampling": "411"})
    with pytest.raises(CodecError, match="hevc"):
        BPG({"hevc": "x264"})
    with pytest.raises(CodecError, match="rate point"):
        BPG().validate_rate(52)  # checked before a sweep, and by encode


@pytest.mark.skipif(shutil.which("bpgenc") is None or shutil.which("bpgdec") is None,
                    reason="bpgenc/bpgdec (libbpg) not installed; the in-process 'hevc' codec covers BPG's RD")
def test_real_round_trip():
    from cdc_bench.metrics.distortion import psnr

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:37, 0:51]
    image = np.clip(np.stack([x * 4, y * 6, 128 + 0 * x], -1) + rng.normal(0, 2, (37, 51, 3)), 0, 255)
    image = image.astype(np.uint8)
    codec = BPG()
    low, high = codec.encode(image, 40).data, codec.encode(image, 20).data
    assert low.startswith(b"BPG\xfb") and len(low) < len(high)
    rec_low, rec_high = codec.decode(low), codec.decode(high)
    assert rec_low.shape == image.shape and rec_low.dtype == np.uint8
    assert psnr(image, rec_low) < psnr(image, rec_high)
    with pytest.raises(BitstreamError):
        codec.decode(high[: len(high) // 3])
