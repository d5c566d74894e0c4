"""A batched decode's latents equal each image's encoder latents bit for bit, at small, odd and Kodak sizes.

The streams are made with the released x-param architecture (random weights, no download): the full-size
hyper-decoder is what rounds differently in a batch. Building the latents from sampled hyper-latents skips the
analysis transform, so even Kodak size (768×512) costs well under a second per batch; the end-to-end test codes
real crops through the codec (its images: test_cdc_codec.py).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cdc_bench.cdc import loading as models
from cdc_bench.cdc.bitstream import unpack
from cdc_bench.cdc.codec import CDCXParam
from cdc_bench.cdc.coding import decode_latents


@pytest.fixture(scope="module")
def codec():
    return CDCXParam({"weights": "random", "steps": 1})


@pytest.fixture(scope="module")
def loaded(codec):
    return models.for_rate(codec.name, codec.variant, 0.0, codec.options, "cpu", codec.numerics)


def _streams(loaded, height: int, width: int, batch: int, seed: int):
    """Per image, as the encoder codes it (one image per call): z strings, y strings, CRCs, encoder ẑ and ŷ."""
    comp, coder = loaded.model.context_fn, loaded.coder
    gen = torch.Generator().manual_seed(seed)
    out = {"z": [], "y": [], "crc": [], "z_hat": [], "y_hat": []}
    with torch.inference_mode():
        for _ in range(batch):
            z = 3 * torch.randn(1, loaded.z_channels, height // 64, width // 64, generator=gen)
            (z_string,), z_hat = coder.encode_hyper(z)
            mean, scale = comp.hyper_synthesis(z_hat)
            y = mean + scale * 4 * torch.randn(mean.shape, generator=gen)
            (y_string,), y_hat = coder.encode_latent(y, mean, scale)
            for key, value in zip(out, (z_string, y_string, coder.scale_indexes_crc(scale), z_hat, y_hat)):
                out[key].append(value)
    return out


@pytest.mark.parametrize("batch", [2, 4])
@pytest.mark.parametrize("height, width", [(64, 64), (128, 128), (128, 192), (192, 256), (512, 768)])
def test_batched_latents_equal_encoder_and_single_decodes(loaded, height, width, batch):
    s = _streams(loaded, height, width, batch, seed=height * 7 + width + batch)
    comp, coder = loaded.model.context_fn, loaded.coder
    shape = (batch, loaded.z_channels, height // 64, width // 64)
    z_hat, y_hat = decode_latents(comp, coder, s["z"], s["y"], shape, s["crc"], "cpu")
    for i in range(batch):
        assert torch.equal(z_hat[i:i + 1], s["z_hat"][i])
        assert torch.equal(y_hat[i:i + 1], s["y_hat"][i]), int((y_hat[i:i + 1] != s["y_hat"][i]).sum())
    single_z, single_y = decode_latents(comp, coder, s["z"][-1:], s["y"][-1:], (1, *shape[1:]), s["crc"][-1:], "cpu")
    assert torch.equal(single_z, s["z_hat"][-1]) and torch.equal(single_y, s["y_hat"][-1])


@pytest.mark.parametrize("height, width", [(64, 64), (192, 128)])
def test_coded_crops_decode_to_the_encoders_latents_in_a_batch(codec, loaded, kodim23, height, width):
    crops = [np.ascontiguousarray(kodim23[i * 40:i * 40 + height, i * 24:i * 24 + width]) for i in range(2)]
    parsed = [unpack(codec.encode(crop, 0.0).data) for crop in crops]
    comp = loaded.model.context_fn
    with torch.inference_mode():
        expected = [comp.latents(codec._to_tensor(crop)) for crop in crops]
    shape = (2, loaded.z_channels, height // 64, width // 64)
    z_hat, y_hat = decode_latents(comp, loaded.coder, [z for _, z, _ in parsed], [y for _, _, y in parsed], shape,
                                  [h.scale_crc for h, _, _ in parsed], "cpu")
    for i, exp in enumerate(expected):
        assert torch.equal(z_hat[i:i + 1], exp.q_hyper_latent) and torch.equal(y_hat[i:i + 1], exp.q_latent)
