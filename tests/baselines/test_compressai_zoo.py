"""compressai:<model> on random weights of the real architectures, the checkpoint loader, and the offline path.

Pretrained numbers (Kodak vs CompressAI's published JSONs) need the weight files, which tests never download.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from baselines import compressai_zoo as zoo
from baselines._container import torch_hub_checkpoints
from cdc_bench.codecs.base import BitstreamError, CodecError
from cdc_bench.codecs.registry import get_codec_class
from cdc_bench.weights import WeightChecksumMismatch, WeightsMissing, file_sha256, get_weight

# Odd sizes on purpose: padding to 64 and unpadding must give the original size back.
SIZE = (67, 93)


@pytest.fixture()
def image() -> np.ndarray:
    rng = np.random.default_rng(7)
    # A smooth image (plus a little noise) so the latents are not all saturated.
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    base = np.stack([xx * 2.5, yy * 3.0, (xx + yy) * 1.4], axis=-1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


pytestmark = pytest.mark.usefixtures("offline_torch_hub")


def test_family_lists_the_zoo_and_resolves_through_the_registry():
    from compressai.zoo import image_models

    variants = zoo.FAMILY.variants()
    assert set(variants) == set(image_models) - {"bmshj2018-factorized-relu"}
    cls = get_codec_class("compressai:mbt2018-mean")
    assert cls.model == "mbt2018-mean" and cls.name == "compressai:mbt2018-mean"
    assert cls.rate_points == tuple(range(1, 9))
    assert get_codec_class("compressai:cheng2020-attn").rate_points == tuple(range(1, 7))
    assert get_codec_class("compressai:mbt2018-vbr").rate_points == zoo.VBR_STEPS


@pytest.mark.parametrize("model", ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean",
                                   "bmshj2018-hyperprior-vbr"])
def test_round_trip_matches_the_network_on_quantized_latents(model, image):
    """decode(encode(x)) is the network's own reconstruction of the rounded latents, bit for bit.

    Holds because these models quantize identically in compress() and in eval-mode forward(); a wrong header,
    wrong padding or a wrong string order breaks it.
    """
    cls = zoo.FAMILY.codec_for(model)
    rate = cls.rate_points[0]
    enc = cls({"weights": "random"})
    encoded = enc.encode(image, rate)
    data = encoded.data
    assert enc.encode(image, rate).data == data  # deterministic
    dec = cls({"weights": "random"})  # a separate decoder: only the bytes go across
    recon = dec.decode(data)
    assert recon.shape == image.shape and recon.dtype == np.uint8

    x, step = zoo.padded_input(image), (rate if cls.vbr else None)
    net = enc._loaded[1]
    with torch.no_grad():
        out = net(x, stage=2, s=0, inputscale=zoo._vbr_scale(step)) if cls.vbr else net(x)
    from compressai.ops import compute_padding

    _, unpad = compute_padding(*SIZE, min_div=64)
    expected = (torch.nn.functional.pad(out["x_hat"], unpad)[0] * 255).clamp(0, 255).round()
    expected = expected.to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(recon, expected)

    # The real coder spends about what the likelihoods predict: at most the header and ~2% more. VBR models'
    # forward() estimates the variable-rate bottleneck less tightly (CompressAI's own entropy estimation).
    est = encoded.estimated_bits
    slack = 1.25 if cls.vbr else 1.05
    assert est is not None and 0.9 * est < 8 * len(data) < slack * est + 8 * 40


@pytest.mark.parametrize("model", ["mbt2018", "cheng2020-anchor"])
def test_autoregressive_and_cheng_models_round_trip(model, image):
    cls = zoo.FAMILY.codec_for(model)
    small = image[:40, :50]
    data = cls({"weights": "random"}).encode(small, 1).data
    a = cls({"weights": "random"}).decode(data)
    b = cls({"weights": "random"}).decode(data)
    assert a.shape == small.shape
    np.testing.assert_array_equal(a, b)


def test_rate_points_change_the_bitstream_and_header_carries_them(image):
    cls = zoo.FAMILY.codec_for("bmshj2018-factorized")
    codec = cls({"weights": "random", "metric": "ms-ssim"})
    d1, d6 = codec.encode(image, 1).data, codec.encode(image, 6).data  # 6 is the (192, 320) configuration
    assert d1[:2] == zoo.MAGIC and d1[3] == zoo.MODEL_CODES["bmshj2018-factorized"]
    assert d1[4] == 0b11 and d1[5] == 1 and d6[5] == 6  # ms-ssim + random flags, quality byte
    assert codec.decode(d6).shape == image.shape


def test_bad_bitstreams_and_options_are_clear_errors(image):
    cls = zoo.FAMILY.codec_for("bmshj2018-hyperprior")
    codec = cls({"weights": "random"})
    data = codec.encode(image, 2).data
    with pytest.raises(BitstreamError, match="truncated"):
        codec.decode(data[: len(data) // 2])
    with pytest.raises(BitstreamError, match="magic"):
        codec.decode(b"XX" + data[2:])
    other = zoo.FAMILY.codec_for("mbt2018-mean")({"weights": "random"})
    with pytest.raises(BitstreamError, match="compressai:bmshj2018-hyperprior"):
        other.decode(data)
    with pytest.raises(BitstreamError, match="weights=random"):
        cls({"weights": "pretrained"}).decode(data)
    with pytest.raises(CodecError, match="quality 9"):
        codec.encode(image, 9)
    with pytest.raises(CodecError, match="metric"):
        cls({"metric": "psnr"})
    with pytest.raises(CodecError, match="metric=mse"):
        zoo.FAMILY.codec_for("mbt2018-vbr")({"metric": "ms-ssim"})


def _legacy_keys(state: dict) -> dict:
    """The key layout of CompressAI's published checkpoints (ParameterList names, DataParallel prefix)."""
    out = {}
    for key, value in state.items():
        for new, old in (("_matrix", "_matrices."), ("_bias", "_biases."), ("_factor", "_factors.")):
            if key.startswith(f"entropy_bottleneck.{new}"):
                key = key.replace(new, old)
        out["module." + key] = value
    return out


def test_pretrained_path_loads_a_checkpoint_of_the_published_layout(image, tmp_path, monkeypatch):
    """A state dict in the published layout, placed where torch.hub caches it, is found, loaded with
    weights_only=True, converted, and codes exactly like the network it was saved from. A file failing the
    published sha256 prefix is refused; the stand-in is accepted once the entry carries its own hash."""
    cls = zoo.FAMILY.codec_for("bmshj2018-hyperprior")
    source = cls({"weights": "random"})
    data_random = source.encode(image, 3).data
    weight = get_weight(zoo.weight_name("bmshj2018-hyperprior", "mse", 3))
    assert weight.url.endswith("bmshj2018-hyperprior-3-6d87be32.pth.tar") and weight.sha256 == "6d87be32"
    assert not weight.present()
    target = torch_hub_checkpoints() / "bmshj2018-hyperprior-3-6d87be32.pth.tar"
    target.parent.mkdir(parents=True)
    torch.save({"state_dict": _legacy_keys(source._loaded[1].state_dict())}, target)
    assert weight.present() and weight.verify() is False  # our stand-in is not the published file
    with pytest.raises(WeightChecksumMismatch, match="fails its sha256"):
        cls({"weights": "pretrained"}).encode(image, 3)
    monkeypatch.setattr(weight, "sha256", file_sha256(target)[:8])

    pretrained = cls({"weights": "pretrained"})
    assert pretrained.required_weights([3]) == [weight.name]
    data = pretrained.encode(image, 3).data
    assert data[5:] == data_random[5:] and data[4] == 0  # same codes; only the weights flag differs
    np.testing.assert_array_equal(pretrained.decode(data), source.decode(data_random))


def test_checkpoint_of_the_wrong_layout_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth.tar"
    torch.save({"g_a.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(CodecError, match="does not fit compressai:mbt2018-mean"):
        zoo.load_zoo_checkpoint("mbt2018-mean", bad)


def test_offline_missing_weights_name_file_url_and_folder(image):
    codec = zoo.FAMILY.codec_for("cheng2020-anchor")({"weights": "pretrained"})
    with pytest.raises(WeightsMissing) as info:
        codec.encode(image, 1)
    message = str(info.value)
    assert "compressai/cheng2020-anchor-mse-1" in message
    assert "https://compressai.s3.amazonaws.com/models/v1/cheng2020-anchor-1-dad2ebff.pth.tar" in message
    assert str(torch_hub_checkpoints()) in message


# -- acceptance with the published weights (runs only where they are in the torch.hub cache) ------------------------
#: (model, metric) -> published Kodak results: 8-bit decoded PSNR where CompressAI published it (the ms-ssim
#: files in 8bit-decoded/ repeat the mse numbers, so the float-reconstruction CPU files are used for those).
PUBLISHED = {
    ("bmshj2018-hyperprior", "mse"): "8bit-decoded/kodak/compressai-bmshj2018-hyperprior_mse_ans_cuda.json",
    ("mbt2018-mean", "mse"): "8bit-decoded/kodak/compressai-mbt2018-mean_mse_ans_cuda.json",
    ("bmshj2018-factorized", "ms-ssim"): "kodak/compressai-bmshj2018-factorized_ms-ssim_cpu.json",
}


@pytest.mark.slow
@pytest.mark.parametrize("model,metric", sorted(PUBLISHED))
def test_kodak_matches_compressai_published_results(model, metric, kodak_dir, shared_dir, monkeypatch):
    """Mean bpp and PSNR over the 24 Kodak images equal CompressAI's published JSON at every quality whose
    pretrained weights are present (bpp within 0.5% + our 20-byte header, PSNR within 0.05 dB)."""
    import json

    from cdc_bench.datasets.images import read_image
    from cdc_bench.metrics.distortion import psnr

    monkeypatch.undo()  # the real torch.hub cache, read only: qualities without weights are not run
    cls = zoo.FAMILY.codec_for(model)
    present = [q for q in cls.rate_points if get_weight(zoo.weight_name(model, metric, q)).present()]
    if not present:
        pytest.skip(f"CompressAI's {model} {metric} weights are not in {torch_hub_checkpoints()}; fetch them with "
                    f"cdc-bench run -d kodak -c compressai:{model} -o compressai:{model}.metric={metric}")
    published = json.loads((shared_dir / "reference" / "published" / "compressai" / PUBLISHED[model, metric])
                           .read_text())["results"]
    images = [read_image(p)[0] for p in sorted(kodak_dir.glob("kodim*.png"))]
    assert len(images) == 24
    codec = cls({"metric": metric, "weights": "pretrained"})
    for quality in present:
        bpps, psnrs = [], []
        for img in images:
            data = codec.encode(img, quality).data
            bpps.append(8 * len(data) / (img.shape[0] * img.shape[1]))
            psnrs.append(psnr(img, codec.decode(data)))
        ref_bpp, ref_psnr = published["bpp"][quality - 1], published["psnr-rgb"][quality - 1]
        assert abs(np.mean(bpps) - ref_bpp) < 0.005 * ref_bpp + 8 * 20 / (512 * 768), (quality, np.mean(bpps), ref_bpp)
        assert abs(np.mean(psnrs) - ref_psnr) < 0.05, (quality, np.mean(psnrs), ref_psnr)


# -- untrusted bitstreams (issue 10): every header field is checked before a tensor is built or rANS runs ----------
def _header_and_strings(data: bytes) -> tuple[int, list[bytes]]:
    """Where the strings start in a non-VBR stream (after magic, version, model, flags, quality, h, w, shape)."""
    from baselines._container import Reader, unpack_strings

    r = Reader(data, "t")
    r.take(6, "fixed")
    r.varint("h"), r.varint("w")
    for _ in range(r.varint("rank")):
        r.varint("shape")
    start = r.pos
    return start, [g[0] for g in unpack_strings(r)]


def test_corrupt_header_fields_are_bitstream_errors_before_any_native_call(image):
    """Each of these crashed the interpreter (segfault in CompressAI's rANS decoder) or allocated without bound
    before the header was checked; now each is refused from the header alone."""
    from baselines._container import pack_strings, write_varint

    cls = zoo.FAMILY.codec_for("bmshj2018-hyperprior")
    codec = cls({"weights": "random"})
    data = codec.encode(image, 1).data
    start, strings = _header_and_strings(data)
    fixed = data[:6]  # CZ, version, model, flags, quality
    size = write_varint(SIZE[0]) + write_varint(SIZE[1])

    def stream(shape=(2, 2), groups=None, head=fixed, dims=size):
        body = write_varint(len(shape)) + b"".join(write_varint(s) for s in shape)
        return head + dims + body + pack_strings([[s] for s in (strings if groups is None else groups)])

    assert stream() == data
    cases = {
        "latent shape \\[2, 66\\]": stream((2, 66)),  # one flipped bit in the width of the latent
        "latent shape \\[2\\]": stream((2,)),
        "latent rank 9": stream((2, 2, 2, 2, 2, 2, 2, 2, 2)),
        "1 strings; this model codes 2": stream(groups=strings[:1]),
        "string 0 has 0 bytes": stream(groups=[b"", strings[1]]),
        "string 1 has 6 bytes": stream(groups=[strings[0], strings[1][:6]]),
        "quality 0": stream(head=fixed[:5] + b"\x00"),
        "unknown flags": stream(head=fixed[:4] + b"\x06" + fixed[5:]),
        "metric=ms-ssim": stream(head=fixed[:4] + b"\x03" + fixed[5:]),
        "height 0": stream(dims=write_varint(0) + write_varint(SIZE[1])),
        "too large": stream(dims=write_varint(60000) + write_varint(60000)),
    }
    for message, bad in cases.items():
        with pytest.raises(BitstreamError, match=message):
            codec.decode(bad)
    np.testing.assert_array_equal(codec.decode(data), cls({"weights": "random"}).decode(data))


def test_vbr_step_from_the_header_is_checked(image):
    import struct

    codec = zoo.FAMILY.codec_for("bmshj2018-hyperprior-vbr")({"weights": "random"})
    data = codec.encode(image, 10.0).data
    assert data[5:9] == struct.pack("<f", 0.1)  # the float32 input scale 1/step the encoder used
    for scale in (float("nan"), float("inf"), 0.0, 1e-30, -1.0, 1e6):
        with pytest.raises(BitstreamError, match="quantization step"):
            codec.decode(data[:5] + struct.pack("<f", scale) + data[9:])


def test_vbr_decoder_uses_the_encoders_scale_bit_for_bit(image):
    """At step 7.1715, float32(1/step) != float32(1/float32(step)): a header carrying the step made the decoder's
    entropy tables differ by one ulp of scale from the encoder's; the header now carries the scale itself."""
    import struct

    codec = zoo.FAMILY.codec_for("mbt2018-mean-vbr")({"weights": "random"})
    data = codec.encode(image, 7.1715).data
    assert struct.pack("<f", float(zoo._vbr_scale(7.1715))) == data[5:9]
    assert float(zoo._vbr_scale(7.1715)) != float(zoo._vbr_scale(struct.unpack("<f", struct.pack("<f", 7.1715))[0]))
    assert zoo.FAMILY.codec_for("mbt2018-mean-vbr")({"weights": "random"}).decode(data).shape == image.shape


def test_max_pixels_bounds_encoding_and_decoding(image):
    cls = zoo.FAMILY.codec_for("bmshj2018-factorized")
    data = cls({"weights": "random"}).encode(image, 1).data
    small = cls({"weights": "random", "max_pixels": 1000})
    with pytest.raises(BitstreamError, match="67x93 is too large .max_pixels=1000"):
        small.decode(data)
    with pytest.raises(CodecError, match="too large"):
        small.encode(image, 1)
    with pytest.raises(CodecError, match="max_pixels"):
        cls({"max_pixels": 0})


def test_decoding_never_downloads(image, monkeypatch):
    """A stream made with pretrained weights, decoded where they are missing: WeightsMissing naming the file, and
    no download is attempted (the sweep's pre-check or `cdc-bench weights --download` fetches weights)."""
    cls = zoo.FAMILY.codec_for("bmshj2018-factorized")
    data = bytearray(cls({"weights": "random"}).encode(image, 1).data)
    data[4] = 0  # the pretrained flag
    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: calls.append(a))
    with pytest.raises(WeightsMissing, match="compressai/bmshj2018-factorized-mse-1"):
        cls({"weights": "pretrained"}).decode(bytes(data))
    assert calls == []


def test_rate_points_are_validated_with_the_valid_range():
    cls = zoo.FAMILY.codec_for("cheng2020-anchor")
    assert cls().validate_rate("3") == 3
    for bad in (0, 7, 2.5, "x", float("nan")):
        with pytest.raises(CodecError, match="integer quality in 1..6"):
            cls().validate_rate(bad)
    vbr = zoo.FAMILY.codec_for("mbt2018-vbr")()
    assert vbr.validate_rate("2.5") == 2.5
    with pytest.raises(CodecError, match="0.1..100"):
        vbr.validate_rate(0)


# -- decode memory (issue 25) ------------------------------------------------------------------------------------
def test_a_tiny_header_claiming_8192_squared_is_refused_by_the_memory_gate(image, decode_capped):
    """With max_pixels raised past 8192^2, the claim passes the ceiling; the decode would need tens of GB, so the
    memory gate refuses it from the header, in a child whose address space may grow by 2 GiB, with no network
    built. A genuine small stream still decodes under the same cap."""
    from baselines._container import pack_strings, write_varint

    cls = zoo.FAMILY.codec_for("bmshj2018-hyperprior")
    data = cls({"weights": "random"}).encode(image, 1).data
    _, strings = _header_and_strings(data)
    crafted = (data[:6] + write_varint(8192) + write_varint(8192) + write_varint(2) + write_varint(128)
               + write_varint(128) + pack_strings([[s] for s in strings]))
    out = decode_capped(cls.name, {"weights": "random", "max_pixels": 8192 * 8192}, crafted)
    assert out.get("error") == "BitstreamError" and not out["loaded"], out
    for part in ("8192x8192", "67108864 pixels", "GiB", "bytes/pixel", "refused before allocating",
                 f"-o {cls.name}.max_pixels=N"):
        assert part in out["message"]
    assert decode_capped(cls.name, {"weights": "random"}, data) == {"image": [*SIZE, 3], "loaded": True}


def test_every_zoo_model_declares_its_measured_decode_memory():
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    measured = {c["codec"]: c for c in json.loads((repo / "results" / "decode_memory.json").read_text())["codecs"]}
    for model in zoo.MODEL_CODES:
        cls = zoo.FAMILY.codec_for(model)
        assert cls.decode_bytes_per_pixel >= measured[cls.name]["declared_bytes_per_pixel"] > 0, model
        assert cls.decode_model_bytes >= measured[cls.name]["model_bytes"], model


def test_declared_decode_memory_covers_a_fresh_measurement(decode_memory):
    cls = zoo.FAMILY.codec_for("bmshj2018-hyperprior")
    # big enough that the ~80 MB by which a peak varies between runs (malloc's arenas) is noise
    measured = decode_memory.measure(cls.name, {}, 8, (768,))[0]
    assert cls.decode_bytes_per_pixel >= measured["bytes_per_pixel"] > 0
