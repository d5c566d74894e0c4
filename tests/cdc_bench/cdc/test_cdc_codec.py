"""CDC codec end to end on the fixtures' small checkpoints (official file formats): bytes, latents, images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cdc_bench.cdc.bitstream import unpack
from cdc_bench.cdc.codec import CDCEpsParam, CDCXParam
from cdc_bench.codecs.base import BitstreamError, CodecError

FAST = {"steps": 3}


@pytest.fixture(scope="module")
def fixtures(shared_dir):
    return shared_dir / "reference" / "cdc" / "fixtures"


@pytest.fixture(scope="module")
def crop(shared_dir):
    """The fixtures' input: kodim01 rows 192:256, cols 320:384."""
    from cdc_bench.datasets.images import read_image

    return np.ascontiguousarray(read_image(shared_dir / "datasets" / "kodak" / "kodim01.png")[0][192:256, 320:384])


def _loaded(codec, model_id):
    from cdc_bench.cdc import loading as models

    return models.for_stream(codec.name, codec.variant, model_id, codec.options, codec.device, codec.numerics)


def expected(fixtures, variant):
    return torch.load(fixtures / f"{variant}_expected.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def xcodec(fixtures):
    return CDCXParam({"checkpoint": str(fixtures / "xparam_ckpt.pt"), **FAST})


@pytest.mark.parametrize("cls, variant", [(CDCXParam, "xparam"), (CDCEpsParam, "epsparam")])
def test_fixture_latents_and_estimated_bpp(fixtures, crop, cls, variant):
    exp = expected(fixtures, variant)
    codec = cls({"checkpoint": str(fixtures / f"{variant}_ckpt.pt"), **FAST})
    torch.testing.assert_close(codec._to_tensor(crop), exp["x"], rtol=0, atol=0)
    encoded = codec.encode(crop, 0.0)
    data = encoded.data
    header, z_string, y_string = unpack(data)
    assert (header.height, header.width, header.padded_height, header.padded_width) == (64, 64, 64, 64)
    assert header.variant == ("x" if variant == "xparam" else "eps")
    assert header.model_id.startswith("file:")
    # 64x64 needs no padding, so the estimate is exactly the official bpp
    assert encoded.estimated_bits / (64 * 64) == pytest.approx(float(exp["bpp"]), rel=1e-4)

    # the decoder's latents, from the bytes alone, are the official quantised latents
    loaded = _loaded(codec, header.model_id)
    z_hat = loaded.coder.decode_hyper([z_string], (1, loaded.z_channels, 1, 1))
    torch.testing.assert_close(z_hat, exp["q_hyper_latent"], rtol=0, atol=1e-5)
    mean, scale = loaded.model.context_fn.hyper_synthesis(z_hat)
    y_hat = loaded.coder.decode_latent([y_string], mean, scale)
    torch.testing.assert_close(y_hat, exp["q_latent"], rtol=0, atol=1e-4)

    image = codec.decode(data)
    assert image.shape == crop.shape and image.dtype == np.uint8


@pytest.mark.parametrize("steps", [1, 3, 15])
def test_decoded_image_matches_official_output(fixtures, crop, xcodec, steps):
    """From our bytes to the official decoder output, with the fixture's saved init."""
    from cdc_bench.cdc.sampler import decode_image

    exp = expected(fixtures, "xparam")
    data = xcodec.encode(crop, 0.0).data
    header, z_string, y_string = unpack(data)
    loaded = _loaded(xcodec, header.model_id)
    comp = loaded.model.context_fn
    with torch.inference_mode():
        z_hat = loaded.coder.decode_hyper([z_string], (1, loaded.z_channels, 1, 1))
        mean, scale = comp.hyper_synthesis(z_hat)
        context = comp.context(loaded.coder.decode_latent([y_string], mean, scale))
        out = decode_image(loaded.model, context, (1, 3, 64, 64), steps=steps, gamma=0.8, eta=0.0,
                           generator=torch.Generator().manual_seed(0), init=exp["init"])
    torch.testing.assert_close(out, exp[f"out_steps{steps}"], rtol=0, atol=1e-3)
    ref = xcodec._to_uint8(exp[f"out_steps{steps}"])[0]
    ours = xcodec._to_uint8(out)[0]
    assert np.abs(ref.astype(int) - ours.astype(int)).max() <= 1


def test_same_seed_same_image_other_seed_other_image(fixtures, crop):
    path = str(fixtures / "xparam_ckpt.pt")
    data = CDCXParam({"checkpoint": path, **FAST}).encode(crop, 0.0).data
    a = CDCXParam({"checkpoint": path, "seed": 7, **FAST}).decode(data)
    b = CDCXParam({"checkpoint": path, "seed": 7, **FAST}).decode(data)
    c = CDCXParam({"checkpoint": path, "seed": 8, **FAST}).decode(data)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.fixture(scope="module")
def xcodec1(fixtures):
    return CDCXParam({"checkpoint": str(fixtures / "xparam_ckpt.pt"), "steps": 1})


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (63, 65), (37, 100)])
def test_any_size_round_trips(xcodec1, shape):
    xcodec = xcodec1
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
    encoded = xcodec.encode(image, 0.0)
    data = encoded.data
    header, _, _ = unpack(data)
    assert (header.height, header.width) == shape
    assert header.padded_height % 64 == 0 and header.padded_width % 64 == 0
    assert header.padded_height - 64 < shape[0] <= header.padded_height
    recon = xcodec.decode(data)
    assert recon.shape == image.shape and recon.dtype == np.uint8
    assert encoded.info["cdc_steps"] == 1
    assert encoded.info["cdc_weights"] == "trained"


def test_batch_decode_matches_single(xcodec1, crop):
    xcodec = xcodec1
    other = np.ascontiguousarray(crop[::-1])
    streams = [xcodec.encode(crop, 0.0).data, xcodec.encode(other, 0.0).data]
    batch = xcodec.decode_batch(streams)
    for stream, image in zip(streams, batch):
        single = xcodec.decode(stream)
        assert np.abs(single.astype(int) - image.astype(int)).max() <= 1


def test_bad_streams_are_clear_errors(fixtures, crop, xcodec):
    data = xcodec.encode(crop, 0.0).data
    with pytest.raises(BitstreamError, match="truncated"):
        xcodec.decode(data[:-10])
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0xFF
    with pytest.raises(BitstreamError, match="corrupted"):
        xcodec.decode(bytes(corrupt))
    eps = CDCEpsParam({"checkpoint": str(fixtures / "epsparam_ckpt.pt"), **FAST})
    with pytest.raises(BitstreamError, match="cdc, not cdc-eps"):
        eps.decode(data)
    with pytest.raises(BitstreamError, match="checkpoint=PATH"):
        CDCXParam(FAST).decode(data)


def test_scale_index_mismatch_is_detected(fixtures, crop, xcodec):
    """If the decoder's scales fell into other table bins than the encoder's, it says so instead of decoding noise."""
    import dataclasses

    from cdc_bench.cdc.bitstream import pack

    header, z, y = unpack(xcodec.encode(crop, 0.0).data)
    tampered = pack(dataclasses.replace(header, scale_crc=header.scale_crc ^ 1), z, y)
    with pytest.raises(BitstreamError, match="scale-index CRC"):
        xcodec.decode(tampered)


def test_checkpoint_rate_point_label(fixtures, tmp_path):
    assert CDCXParam({"checkpoint": str(fixtures / "xparam_ckpt.pt")}).rate_points == (0.0,)
    named = tmp_path / "image-l2-use_weight5-vimeo-d64-t8193-b0.0064-x-cosine-01-float32-aux0.0_2.pt"
    named.write_bytes(b"")
    assert CDCXParam({"checkpoint": str(named)}).rate_points == (0.0064,)
    assert CDCXParam().rate_points == CDCXParam.rate_points


def test_stream_refuses_other_weights(fixtures, crop, tmp_path):
    """A checkpoint with the same architecture but other weights must not decode the stream into noise."""
    ckpt = torch.load(fixtures / "xparam_ckpt.pt", map_location="cpu", weights_only=True)
    ckpt["ema"]["ema_model.context_fn.prior._medians"] = ckpt["ema"]["ema_model.context_fn.prior._medians"] + 0.1
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    data = CDCXParam({"checkpoint": str(fixtures / "xparam_ckpt.pt"), **FAST}).encode(crop, 0.0).data
    with pytest.raises(BitstreamError, match="encoded with checkpoint"):
        CDCXParam({"checkpoint": str(other), **FAST}).decode(data)


def test_random_weights_of_released_architecture(crop):
    """weights=random: the whole pipeline on the full released x-param model, marked as random in the results."""
    codec = CDCXParam({"weights": "random", "steps": 1})
    encoded = codec.encode(crop, 0.0032)
    data = encoded.data
    header, _, _ = unpack(data)
    assert header.model_id == "random:x:0" and header.num_timesteps == 8193
    loaded = _loaded(codec, header.model_id)
    assert sum(p.numel() for p in loaded.model.parameters()) == 53_885_379  # SPEC §1
    assert encoded.estimated_bits > 0
    recon = codec.decode(data)
    assert recon.shape == crop.shape
    assert encoded.info == {"cdc_steps": 1, "cdc_model_id": "random:x:0", "cdc_weights": "random"}


def test_wrong_variant_checkpoint(fixtures, crop):
    with pytest.raises(CodecError, match="use codec cdc-eps"):
        CDCXParam({"checkpoint": str(fixtures / "epsparam_ckpt.pt")}).encode(crop, 0.0)


def test_option_validation(tmp_path):
    with pytest.raises(CodecError, match="steps"):
        CDCXParam({"steps": "0"})
    with pytest.raises(CodecError, match="CUDA"):
        CDCXParam({"dtype": "fp16"})
    with pytest.raises(CodecError, match="weights"):
        CDCXParam({"weights": "bogus"})  # pretrained (or its old word, released) and random are the choices
    with pytest.raises(CodecError, match="does not exist"):
        CDCXParam({"checkpoint": str(tmp_path / "nope.pt")})
    with pytest.raises(CodecError, match="no option"):
        CDCXParam({"stepz": 3})


def test_rate_points_and_required_weights(fixtures):
    assert CDCXParam.rate_points == (0.0032, 0.0064, 0.0128, 0.0512, 0.1024, 0.2048)
    assert CDCEpsParam.rate_points[0] == 0.0128 and CDCEpsParam.option_specs["steps"].default == 200
    assert CDCXParam.option_specs["steps"].default == 65
    assert CDCXParam().required_weights([0.0032, 0.2048]) == ["cdc-x-b0.0032", "cdc-x-b0.2048"]
    assert CDCXParam({"checkpoint": str(fixtures / "xparam_ckpt.pt")}).required_weights([0.0032]) == []
    assert CDCEpsParam({"weights": "random"}).required_weights([0.0128]) == []
    with pytest.raises(CodecError, match="released lambdas"):
        CDCXParam().required_weights([0.5])


def test_registered_through_entry_points():
    from cdc_bench.codecs.registry import get_codec_class

    assert get_codec_class("cdc") is CDCXParam
    assert get_codec_class("cdc-eps") is CDCEpsParam
    assert CDCXParam.availability().ok


def test_decoder_latents_are_the_official_ones_bit_for_bit(fixtures, crop, xcodec):
    """Exact by default: ẑ and ŷ from our bytes equal the official code's quantised latents exactly."""
    exp = expected(fixtures, "xparam")
    header, z_string, y_string = unpack(xcodec.encode(crop, 0.0).data)
    loaded = _loaded(xcodec, header.model_id)
    with torch.inference_mode():
        z_hat = loaded.coder.decode_hyper([z_string], (1, loaded.z_channels, 1, 1))
        mean, scale = loaded.model.context_fn.hyper_synthesis(z_hat)
        y_hat = loaded.coder.decode_latent([y_string], mean, scale)
    assert torch.equal(z_hat, exp["q_hyper_latent"]) and torch.equal(y_hat, exp["q_latent"])


def test_official_noise_gives_the_official_scripts_image(fixtures, crop):
    """-o noise=official: the seeded official script (randn_like of a channels-last image) and ours agree."""
    from cdc_bench.cdc.sampler import decode_image

    path = str(fixtures / "xparam_ckpt.pt")
    codec = CDCXParam({"checkpoint": path, "steps": 2, "seed": 5, "noise": "official"})
    data = codec.encode(crop, 0.0).data
    ours = codec.decode(data)
    # the official script's draw, reproduced with torch: read_image's C×H×W view of an H×W×C buffer
    x = torch.from_numpy(crop.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    state = torch.random.get_rng_state()
    torch.manual_seed(5)
    init = torch.randn_like(x) * 0.8
    torch.random.set_rng_state(state)
    header, z_string, y_string = unpack(data)
    loaded = _loaded(codec, header.model_id)
    with torch.inference_mode():
        z_hat = loaded.coder.decode_hyper([z_string], (1, loaded.z_channels, 1, 1))
        mean, scale = loaded.model.context_fn.hyper_synthesis(z_hat)
        context = loaded.model.context_fn.context(loaded.coder.decode_latent([y_string], mean, scale))
        out = decode_image(loaded.model, context, (1, 3, 64, 64), steps=2, init=init)
    assert np.array_equal(ours, codec._to_uint8(out)[0])
    default = CDCXParam({"checkpoint": path, "steps": 2, "seed": 5}).decode(data)
    assert not np.array_equal(ours, default)
    with pytest.raises(CodecError, match="cdc.noise=.bogus. is not valid; choose one of nchw, official"):
        CDCXParam({"noise": "bogus"})


def test_read_only_image_encodes_without_a_numpy_writable_warning(xcodec1):
    """The runner shares images read-only; torch's "NumPy array is not writable" warning came on every CDC run."""
    import warnings

    image = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = xcodec1.encode(image, xcodec1.rate_points[0])
    assert enc.data and not image.flags.writeable
