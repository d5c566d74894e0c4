"""CDC streams are untrusted input: every header field is checked before anything is loaded or allocated,
decoding never downloads, and a few hundred mutated or truncated streams end in a CodecError or an image,
never a crash, a hang or another exception type (run in a subprocess, so a segfault fails the test)."""
from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from cdc_bench.cdc import loading as models
from cdc_bench.cdc.bitstream import Header, pack, unpack
from cdc_bench.cdc.codec import CDCXParam
from cdc_bench.errors import BitstreamError, CodecConfigError, CodecError, CodecUnavailable

def recrc(body: bytes) -> bytes:
    """A stream with its CRC recomputed: what a hostile writer (not a random bit flip) produces."""
    return body[:-4] + struct.pack(">I", zlib.crc32(body[:-4]))


def random_stream(header: Header, z: bytes = b"\x00" * 8, y: bytes = b"\x00" * 8) -> bytes:
    return pack(header, z, y)


def test_coder_byte_is_checked():
    data = bytearray(random_stream(Header("x", "random:x:0", 64, 64, 64, 64, 8193)))
    data[6] = 2  # the coder byte
    with pytest.raises(BitstreamError, match="entropy-coder table set 2 is unknown"):
        unpack(recrc(bytes(data)))


def test_huge_padded_size_is_refused_before_loading_anything(monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded for a stream that should have been refused")

    monkeypatch.setattr(models, "_cached", no_loading)
    stream = random_stream(Header("x", "random:x:0", 12800, 12800, 12800, 12800, 8193))
    with pytest.raises(BitstreamError, match="12800x12800 .* above max_pixels"):
        CDCXParam({"weights": "random"}).decode(stream)
    with pytest.raises(BitstreamError, match="not the image size .* rounded up"):
        unpack(_with_sizes(64, 64, 640, 64))
    with pytest.raises(BitstreamError, match="unknown weights"):
        CDCXParam().decode(random_stream(Header("x", "random:eps:0", 64, 64, 64, 64, 8193)))
    with pytest.raises(BitstreamError, match="T=20000"):
        CDCXParam({"weights": "random"}).decode(random_stream(Header("x", "random:x:0", 64, 64, 64, 64, 20000)))


def _with_sizes(h: int, w: int, ph: int, pw: int) -> bytes:
    """A stream whose sizes bypass Header's own checks (a hand-made hostile header)."""
    model_id = b"random:x:0"
    body = (struct.pack(">4sBBBB", b"CDCb", 1, 0, 1, len(model_id)) + model_id
            + struct.pack(">IIIIIIII", h, w, ph, pw, 8193, 0, 0, 0))
    return body + struct.pack(">I", zlib.crc32(body))


def test_released_weights_missing_locally_never_download(monkeypatch, tmp_path):
    import huggingface_hub

    from cdc_bench.cdc import releases

    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError("decoding started a download")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setattr(releases, "_hub_fetch", no_network)
    release = releases.find_release("x", 0.0032)
    stream = random_stream(Header("x", release.model_id, 64, 64, 64, 64, 8193))
    with pytest.raises(CodecUnavailable, match="never downloads") as err:
        CDCXParam().decode(stream)
    assert "cdc-bench weights --only cdc-x-b0.0032" in str(err.value.fix)


@pytest.mark.parametrize("option, value", [("gamma", "nan"), ("eta", "inf"), ("seed", "-1"), ("steps", "99999"),
                                           ("max_pixels", "nan")])
def test_nan_and_out_of_range_options_are_refused(option, value):
    with pytest.raises(CodecConfigError, match=option):
        CDCXParam({option: value})


def test_rate_points_name_the_released_lambdas():
    with pytest.raises(CodecConfigError, match="released lambdas: 0.0032, 0.0064"):
        CDCXParam().validate_rate(0.5)
    with pytest.raises(CodecConfigError, match="not a lambda"):
        CDCXParam().validate_rate("nan")
    assert CDCXParam().validate_rate("0.0032") == 0.0032
    assert CDCXParam({"weights": "random"}).validate_rate(7) == 7.0


def test_streams_within_max_pixels_still_decode(tiny):
    image = np.random.default_rng(0).integers(0, 256, (70, 130, 3), dtype=np.uint8)
    codec = CDCXParam({"checkpoint": str(tiny), "steps": 1, "max_pixels": 128 * 192})
    assert codec.decode(codec.encode(image, 0.0).data).shape == image.shape
    with pytest.raises(CodecError, match="too large"):
        CDCXParam({"checkpoint": str(tiny), "steps": 1, "max_pixels": 128 * 128}).encode(image, 0.0)



def test_a_tiny_stream_claiming_8192_squared_is_refused_without_allocating(decode_capped):
    """The audit's case: valid CRCs, a padded size inside max_pixels (8192^2), a decode that would need hundreds
    of GB. Decoded in a child whose address space may grow by 2 GiB: it must end in the memory gate's message."""
    stream = random_stream(Header("x", "random:x:0", 8192, 8192, 8192, 8192, 8193))
    assert len(stream) < 80
    out = decode_capped("cdc", {"weights": "random"}, stream)
    assert out.get("error") == "BitstreamError", out
    for part in ("8192x8192", "67108864 pixels", "GiB", "bytes/pixel", "refused before allocating",
                 "-o cdc.max_pixels=N"):
        assert part in out["message"]


def test_a_batch_is_sized_as_a_whole(monkeypatch):
    from cdc_bench.codecs import learned

    codec = CDCXParam({"weights": "random"})
    per_image = 1024 * 1024 * codec.decode_bytes_per_pixel + codec.decode_model_bytes
    monkeypatch.setattr(learned, "available_memory", lambda: (int(per_image * 1.5), "available system memory"))
    monkeypatch.setattr(models, "_cached", lambda *a, **k: pytest.fail("a model was loaded"))
    stream = random_stream(Header("x", "random:x:0", 1024, 1024, 1024, 1024, 8193))
    with pytest.raises(BitstreamError, match="decoding 2 images of 1024x1024"):
        codec.decode_batch([stream, stream])


@pytest.mark.slow  # two builds of the network (the parent encodes, a child decodes): minutes on 2 cores
def test_declared_decode_memory_covers_a_fresh_measurement(decode_memory):
    """The declared bytes/pixel must be at least what a decode measures now (a figure set too low fails)."""
    # big enough that the ~80 MB by which a peak varies between runs (malloc's arenas) is noise
    measured = decode_memory.measure("cdc", {"steps": "1"}, None, (384,))[0]
    assert CDCXParam.decode_bytes_per_pixel >= measured["bytes_per_pixel"] > 0
    assert CDCXParam.decode_model_bytes >= measured["rss_loaded"] - measured["rss_start"]


# -- fuzzing, in a subprocess ---------------------------------------------------------------------------------
def mutations(streams: list[bytes], count: int, seed: int = 0) -> list[bytes]:
    """Truncations, bit flips (CRC left wrong), re-CRC'd byte and header-field edits, garbage."""
    rng = random.Random(seed)
    out = []
    for k in range(count):
        data = bytearray(rng.choice(streams))
        kind = k % 6
        if kind == 0:
            data = data[:rng.randrange(len(data))]
        elif kind == 1:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind in (2, 3):  # hostile: payload or header bytes changed, CRC recomputed
            lo = 0 if kind == 3 else len(data) - 40
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(max(lo, 0), len(data) - 4)] = rng.randrange(256)
            data = bytearray(recrc(bytes(data)))
        elif kind == 4:  # a header size field set to a random value, CRC recomputed
            id_len = data[7]
            field = rng.randrange(8)
            pos = 8 + id_len + 4 * field
            data[pos:pos + 4] = struct.pack(">I", rng.choice([0, 1, 63, 64, 128, 192, 256, 4096, 2**31, 2**32 - 1,
                                                              rng.randrange(2**32)]))
            data = bytearray(recrc(bytes(data)))
        else:
            data = bytearray(rng.randbytes(rng.randrange(0, 200)))
        out.append(bytes(data))
    return out


def fuzz(checkpoint: str, count: int) -> dict:
    codec = CDCXParam({"checkpoint": checkpoint, "steps": 1, "max_pixels": 256 * 256})
    rng = np.random.default_rng(1)
    streams = [codec.encode(rng.integers(0, 256, shape, dtype=np.uint8), 0.0).data
               for shape in ((64, 64, 3), (70, 130, 3))]
    outcomes: dict[str, int] = {}
    for data in mutations(streams, count):
        try:
            image = codec.decode(data)
            assert image.dtype == np.uint8 and image.ndim == 3
            kind = "image"
        except (BitstreamError, CodecError) as err:
            kind = type(err).__name__
        except Exception as err:  # noqa: BLE001 - exactly what the test looks for
            kind = f"OTHER {type(err).__name__}: {err}"
        outcomes[kind] = outcomes.get(kind, 0) + 1
    return outcomes


def test_fuzzed_streams_end_in_codec_errors_or_images(tiny, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", CDC_BENCH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, tiny, "300"], capture_output=True, text=True,
                          timeout=240, env=env)
    assert proc.returncode == 0, f"decoder process died ({proc.returncode}): {proc.stderr[-2000:]}"
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    others = {k: v for k, v in outcomes.items() if k.startswith("OTHER")}
    assert not others, others
    assert sum(outcomes.values()) == 300
    assert outcomes.get("BitstreamError", 0) > 100, outcomes


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(fuzz(sys.argv[1], int(sys.argv[2]))))


def test_random_weight_streams_need_weights_random(monkeypatch):
    monkeypatch.setattr(models, "_cached", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(BitstreamError, match="weights=random"):
        CDCXParam().decode(random_stream(Header("x", "random:x:5", 64, 64, 64, 64, 8193)))


def test_declared_decode_memory_is_the_measured_one():
    from pathlib import Path

    from cdc_bench.cdc.codec import CDCEpsParam

    results = Path(__file__).resolve().parents[3] / "results" / "decode_memory.json"
    measured = {c["codec"]: c for c in json.loads(results.read_text())["codecs"]}
    for cls in (CDCXParam, CDCEpsParam):
        assert cls.decode_bytes_per_pixel >= measured[cls.name]["declared_bytes_per_pixel"] > 0
        assert cls.decode_model_bytes >= measured[cls.name]["model_bytes"]
