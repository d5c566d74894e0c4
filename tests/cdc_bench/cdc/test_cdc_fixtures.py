"""Our CDC against tensors the official code produced from the fixture checkpoints (fixtures/README.md):
context features, quantised latents, estimated bpp and decoded images for S = 1, 3, 15 from the saved init,
with the README's suggested tolerances."""
from __future__ import annotations

import json

import pytest
import torch

from cdc_bench.cdc.checkpoint import load_cdc
from cdc_bench.cdc.entropy import gaussian_likelihood
from cdc_bench.cdc.model import CDCConfig
from cdc_bench.cdc.sampler import decode_image

PREFIXES = {"x": "xparam", "eps": "epsparam"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny 64x64 models: thread start-up dominates, and on a loaded machine 2 threads are several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=["x", "eps"])
def case(request, shared_dir):
    folder = shared_dir / "reference" / "cdc" / "fixtures"
    prefix = PREFIXES[request.param]
    config = CDCConfig.from_dict(json.loads((folder / f"{prefix}_config.json").read_text()))
    model = load_cdc(folder / f"{prefix}_ckpt.pt", config=config)
    expected = torch.load(folder / f"{prefix}_expected.pt", map_location="cpu", weights_only=True)
    with torch.inference_mode():
        out = model.compress(expected["x"])
    return request.param, model, expected, out


def test_compressor_tensors(case):
    _, model, exp, out = case
    for name, ours in (("latent", out.latent), ("hyper_latent", out.hyper_latent),
                       ("latent_mean", out.latent_mean), ("latent_scale_clamped", out.latent_scale),
                       *((f"context_{i}", c) for i, c in enumerate(out.context))):
        torch.testing.assert_close(ours, exp[name], rtol=1e-4, atol=1e-4, msg=name)
    assert len(out.context) == 4


def test_quantised_latents(case):
    _, _, exp, out = case
    torch.testing.assert_close(out.q_latent, exp["q_latent"], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.q_hyper_latent, exp["q_hyper_latent"], rtol=0, atol=1e-5)


def test_likelihoods_and_estimated_bpp(case):
    variant, model, exp, out = case
    with torch.inference_mode():
        p_z = model.context_fn.prior.likelihood(out.q_hyper_latent)
        p_y = gaussian_likelihood(out.q_latent, out.latent_mean, out.latent_scale)
    torch.testing.assert_close(p_z, exp["hyper_likelihood"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(p_y, exp["latent_likelihood"], rtol=1e-4, atol=1e-6)
    bpp = (-torch.log2(p_z).sum() - torch.log2(p_y).sum()) / (64 * 64)
    torch.testing.assert_close(bpp.reshape(1), exp["bpp"], rtol=1e-4, atol=0)
    returned = exp["bpp_returned_steps1"]
    assert returned.shape == (() if variant == "x" else (1,))  # bpp_return_mean True for x, False for eps


@pytest.mark.parametrize("steps", [1, 3, 15])
def test_decoded_images(case, steps):
    variant, model, exp, out = case
    result = decode_image(model, out.context, exp["x"].shape, steps, gamma=0.8, init=exp["init"])
    ref = exp[f"out_steps{steps}"]
    if variant == "x":
        torch.testing.assert_close(result, ref, rtol=0, atol=1e-3)
        assert float(result.abs().max()) <= 1.0  # x0 clamped
    else:
        assert float((result - ref).abs().max()) <= 1e-4 * float(ref.abs().max())


@pytest.mark.parametrize("steps", [1, 3])
def test_per_call_traces(case, steps):
    variant, model, exp, out = case
    calls = []
    decode_image(model, out.context, exp["x"].shape, steps, init=exp["init"], callback=calls.append)
    assert len(calls) == steps
    torch.testing.assert_close(calls[0]["x"], exp["init"], rtol=0, atol=0)
    for k, call in enumerate(calls):
        key = f"steps{steps}_call{k}"
        torch.testing.assert_close(call["time_in"].reshape(1, 1), exp[f"{key}_time_in"], rtol=0, atol=1e-7)
        torch.testing.assert_close(call["out"], exp[f"{key}_net_out"], rtol=0, atol=1e-4)
        if k:
            ref = exp[f"{key}_x_in"]
            atol = 1e-3 if variant == "x" else 1e-4 * float(ref.abs().max())
            torch.testing.assert_close(call["x"], ref, rtol=0, atol=atol)

