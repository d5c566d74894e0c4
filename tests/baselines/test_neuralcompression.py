"""msillm / nogan: our HiFiC autoencoder against NeuralCompression's layout, on random weights end to end,
the checkpoint loader, and the offline path. The published checkpoints are never downloaded here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines import neuralcompression as nc
from baselines._container import torch_hub_checkpoints
from cdc_bench.codecs.base import BitstreamError, CodecError
from cdc_bench.codecs.registry import get_codec_class
from cdc_bench.weights import WeightsMissing, get_weight

LAYOUT = Path(__file__).resolve().parent / "data" / "neuralcompression_hific_layout.json"


pytestmark = pytest.mark.usefixtures("offline_torch_hub")


@pytest.fixture(scope="module")
def encoder():
    """One random-weights MS-ILLM codec for the module (the network has 181 M parameters)."""
    return nc.MSILLM({"weights": "random"})


@pytest.fixture()
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:50, 0:60]  # pads to 64 x 64: the smallest the network codes
    base = np.stack([xx * 2.8, yy * 3.5, 255 - (xx + yy) * 1.5], axis=-1)
    return np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)


def test_state_dict_layout_matches_neuralcompression():
    """Every key and shape of neuralcompression 0.3.1's HiFiCAutoencoder (dumped from the package, before
    ``update()``, so the CDF buffers are empty in both)."""
    reference = json.loads(LAYOUT.read_text())["layout"]
    ours = {k: list(v.shape) for k, v in nc.hific_autoencoder_class()().state_dict().items()}
    assert ours == reference


def test_registry_names_rate_points_and_weights():
    assert get_codec_class("msillm") is nc.MSILLM and get_codec_class("nogan") is nc.NoGAN
    assert nc.MSILLM.rate_points == ("vlo1", "vlo2", 1, 2, 3, 4, 5, 6) and nc.NoGAN.rate_points == (1, 2, 3, 4, 5, 6)
    assert nc.NoGAN({}).required_weights([1, 6]) == ["neuralcompression/noganms-1", "neuralcompression/noganms-6"]
    weight = get_weight("neuralcompression/msillm-3")
    assert weight.url == "https://dl.fbaipublicfiles.com/NeuralCompression/2023-muckley-msillm/msillm_target_0.14bpp.ckpt"
    assert get_weight("neuralcompression/noganms-6").url.endswith("/noganms_target_0.9bpp.ckpt")


def test_very_low_rate_models_are_msillm_rate_points(encoder, image):
    """msillm_quality_vlo1 / vlo2 as NeuralCompression's zoo/_msillm.py names their files; MS-ILLM only."""
    assert nc.MSILLM({}).required_weights(["vlo1", "vlo2"]) == ["neuralcompression/msillm-vlo1",
                                                                 "neuralcompression/msillm-vlo2"]
    assert get_weight("neuralcompression/msillm-vlo1").url == f"{nc.URL_ROOT}/msillm_target_0.00218bpp.ckpt"
    assert get_weight("neuralcompression/msillm-vlo2").url == f"{nc.URL_ROOT}/msillm_target_0.00438bpp.ckpt"
    assert nc.MSILLM({}).validate_rate("vlo2") == "vlo2"
    with pytest.raises(CodecError, match="quality 'vlo1' is not valid"):
        nc.NoGAN({}).validate_rate("vlo1")
    data = encoder.encode(image, "vlo1").data
    assert data[4] == nc.VERY_LOW_CODES["vlo1"]
    assert nc.MSILLM({"weights": "random"}).decode(data).shape == image.shape
    with pytest.raises(BitstreamError, match="quality 11 is not valid"):  # a vlo code in a No-GAN stream
        nc.NoGAN({"weights": "random"}).decode(data[:3] + bytes([0x82]) + data[4:])


def test_round_trip_from_bytes_alone_is_the_generator_on_the_quantized_latent(encoder, image):
    encoded = encoder.encode(image, 2)
    data = encoded.data
    assert encoder.encode(image, 2).data == data  # deterministic
    assert data[:2] == nc.MAGIC and data[3] == 0x81 and data[4] == 2  # msillm + random flag, quality 2
    recon = nc.MSILLM({"weights": "random"}).decode(data)
    assert recon.shape == image.shape and recon.dtype == np.uint8

    net = encoder._loaded[1]
    with torch.no_grad():
        out = net.compress(nc.padded_input(image)[0])
        latent_hat = torch.round(out["latent"] - out["means"]) + out["means"]
        expected = net.decoder(latent_hat).clamp(0, 1)[0, :, :50, :60]
    expected = (expected * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(recon, expected)

    # Within a few % of the likelihoods' bits (an untrained network has latents beyond CompressAI's scale table,
    # coded through its cheaper escape path, hence the lower margin).
    est = encoded.estimated_bits
    assert est is not None and 0.8 * est < 8 * len(data) < 1.05 * est + 8 * 32


def test_tiny_images_are_padded_and_noted(encoder):
    tiny = np.full((9, 13, 3), 120, np.uint8)
    encoded = encoder.encode(tiny, 1)
    data = encoded.data
    assert "edge-replicated" in encoded.info["codec_note"]
    assert encoder.decode(data).shape == tiny.shape


def test_bitstream_errors(encoder, image):
    data = encoder.encode(image, 1).data
    with pytest.raises(BitstreamError, match="truncated"):
        encoder.decode(data[:-5])
    with pytest.raises(BitstreamError, match="made by msillm"):
        nc.NoGAN({"weights": "random"}).decode(data)
    with pytest.raises(BitstreamError, match="weights=random"):
        nc.MSILLM({"weights": "pretrained"}).decode(data)
    with pytest.raises(CodecError, match="quality 7"):
        encoder.encode(image, 7)
    with pytest.raises(CodecError, match="weights"):
        nc.MSILLM({"weights": "imagenet"})


def test_pretrained_path_loads_a_checkpoint_of_the_published_layout(image):
    """A plain state dict (what torch.hub loads for noganms_quality_N) at the torch.hub cache path is found,
    loaded with weights_only=True and strict names, and codes exactly like the network it came from.

    The source network has 1 residual block instead of 9 (the loader reads the configuration from the tensors)
    to keep the file small; names and all other shapes are the published ones."""
    torch.manual_seed(5)
    source = nc.hific_autoencoder_class()(num_residual_blocks=1).eval()
    source.update(force=True)
    weight = get_weight("neuralcompression/noganms-1")
    assert not weight.present()
    target = torch_hub_checkpoints() / "noganms_target_0.035bpp.ckpt"
    target.parent.mkdir(parents=True)
    torch.save(source.state_dict(), target)
    assert weight.present()

    nogan = nc.NoGAN({"weights": "pretrained"})
    data = nogan.encode(image, 1).data
    assert data[3] == nc.NoGAN.code
    x = nc.padded_input(image)[0]
    with torch.no_grad():
        strings = source.compress(x)["strings"]
        expected = source.decompress(strings, tuple(x.shape[-2:]))[0, :, :50, :60]
    assert data.endswith(nc.pack_strings(strings))
    expected = (expected * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(nc.NoGAN({}).decode(data), expected)


def test_checkpoint_of_the_wrong_layout_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    torch.save({"encoder.blocks.0.0.weight": torch.zeros(2)}, bad)
    with pytest.raises(CodecError, match="does not fit the HiFiC autoencoder"):
        nc.load_hific_checkpoint(bad)
    torch.save({"g_a.0.weight": torch.zeros(2)}, bad)  # a CompressAI zoo file
    with pytest.raises(CodecError, match="not a HiFiC autoencoder state dict"):
        nc.load_hific_checkpoint(bad)


def test_offline_missing_weights_name_file_url_and_folder(image):
    with pytest.raises(WeightsMissing) as info:
        nc.MSILLM({}).encode(image, 4)
    message = str(info.value)
    assert "neuralcompression/msillm-4" in message
    assert f"{nc.URL_ROOT}/msillm_target_0.3bpp.ckpt" in message
    assert str(torch_hub_checkpoints()) in message and "CC-BY-NC" in message


def test_same_bits_as_the_neuralcompression_package(encoder, image):
    """Optional: with ``neuralcompression`` importable, its model on our state dict gives our strings."""
    official = pytest.importorskip("neuralcompression.models", reason="optional reference package "
                                   "neuralcompression not installed (pip install --no-deps neuralcompression)")
    encoder.encode(image, 1)
    ref = official.HiFiCAutoencoder().eval()
    ref.load_state_dict(encoder._loaded[1].state_dict())
    ours = encoder._loaded[1]
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        got = ref.compress(x)
        padded = torch.nn.functional.pad(x, (0, 4, 0, 14), mode="reflect")
        mine = ours.compress(padded)
    assert got.latent_strings == mine["strings"][0] and got.hyper_latent_strings == mine["strings"][1]


# -- untrusted bitstreams (issue 10) ------------------------------------------------------------------------------
def test_a_header_claiming_4096x4096_is_refused_at_once(encoder, image):
    """It used to run for minutes with 4 GB; now max_pixels (default 8 Mpx) refuses it before a tensor is built."""
    import time

    data = encoder.encode(image, 1).data
    strings = data[7:]  # after NC, version, code, quality, varint 50, varint 60
    crafted = data[:5] + nc.write_varint(4096) + nc.write_varint(4096) + strings
    fresh = nc.MSILLM({"weights": "random"})
    start = time.perf_counter()
    with pytest.raises(BitstreamError, match="4096x4096 is too large .max_pixels=8388608"):
        fresh.decode(crafted)
    assert time.perf_counter() - start < 1.0 and fresh._loaded is None  # no network was even built
    assert nc.MSILLM({"weights": "random", "max_pixels": 4096 * 4096}).options["max_pixels"] == 4096 * 4096


def test_other_header_fields_are_checked(encoder, image):
    data = encoder.encode(image, 1).data
    fresh = nc.MSILLM({"weights": "random"})
    for message, bad in {
        "quality 9": data[:4] + b"\x09" + data[5:],
        "version 7": data[:2] + b"\x07" + data[3:],
        "unknown code 5": data[:3] + b"\x85" + data[4:],
        "height 0": data[:5] + b"\x00" + data[6:],
        "1 strings; this model codes 2": data[:7] + b"\x01" + data[8:],
    }.items():
        with pytest.raises(BitstreamError, match=message):
            fresh.decode(bad)
    assert fresh._loaded is None


def test_decoding_never_downloads(encoder, image, monkeypatch):
    data = bytearray(encoder.encode(image, 3).data)
    data[3] &= 0x7F  # the pretrained flag
    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: calls.append(a))
    with pytest.raises(WeightsMissing, match="neuralcompression/msillm-3"):
        nc.MSILLM({}).decode(bytes(data))
    assert calls == []


# -- decode memory (issue 25) ------------------------------------------------------------------------------------
def test_a_tiny_header_claiming_8192_squared_is_refused_by_the_memory_gate(encoder, image, decode_capped):
    """max_pixels raised past 8192^2: the memory gate refuses the claim from the header (the audit's 2-5 min and
    8 GB), in a child whose address space may grow by 2 GiB, before the 181 M-parameter network is built."""
    data = encoder.encode(image, 1).data
    crafted = data[:5] + nc.write_varint(8192) + nc.write_varint(8192) + data[7:]
    out = decode_capped("msillm", {"weights": "random", "max_pixels": 8192 * 8192}, crafted)
    assert out.get("error") == "BitstreamError" and not out["loaded"], out
    for part in ("8192x8192", "67108864 pixels", "GiB", "bytes/pixel", "refused before allocating",
                 "-o msillm.max_pixels=N"):
        assert part in out["message"]


@pytest.mark.slow  # two builds of the network (the parent encodes, a child decodes): minutes on 2 cores
def test_declared_decode_memory_covers_a_fresh_measurement(decode_memory):
    # big enough that the ~80 MB by which a peak varies between runs (malloc's arenas) is noise
    measured = decode_memory.measure("msillm", {}, 6, (512,))[0]
    assert nc.MSILLM.decode_bytes_per_pixel >= measured["bytes_per_pixel"] > 0
    assert nc.MSILLM.decode_model_bytes >= measured["rss_loaded"] - measured["rss_start"]
    assert nc.NoGAN.decode_bytes_per_pixel == nc.MSILLM.decode_bytes_per_pixel  # the same network


def test_declared_decode_memory_is_the_measured_one():
    import json
    from pathlib import Path

    results = Path(__file__).resolve().parents[2] / "results" / "decode_memory.json"
    measured = next(c for c in json.loads(results.read_text())["codecs"] if c["codec"] == "msillm")
    assert nc.MSILLM.decode_bytes_per_pixel >= measured["declared_bytes_per_pixel"] > 0
    assert nc.MSILLM.decode_model_bytes >= measured["model_bytes"]
