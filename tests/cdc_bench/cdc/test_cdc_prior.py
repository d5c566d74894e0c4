"""FlexiblePrior: official parameter layout and the fixtures' hyper-latent likelihoods."""
from __future__ import annotations

import math

import pytest
import torch

from cdc_bench.cdc.prior import FlexiblePrior

FIXTURES = ("xparam", "epsparam")


def load_fixture_prior(shared_dir, variant: str) -> tuple[FlexiblePrior, dict]:
    """The fixture checkpoint's prior (x-param from ema_model.*, eps from model) and its expected tensors."""
    folder = shared_dir / "reference" / "cdc" / "fixtures"
    ckpt = torch.load(folder / f"{variant}_ckpt.pt", map_location="cpu", weights_only=True)
    state, prefix = (ckpt["ema"], "ema_model.context_fn.prior.") if variant == "xparam" else \
        (ckpt["model"], "context_fn.prior.")
    sd = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    prior = FlexiblePrior(sd["_medians"].shape[1])
    prior.load_state_dict(sd, strict=True)
    expected = torch.load(folder / f"{variant}_expected.pt", map_location="cpu", weights_only=True)
    return prior.eval(), expected


@pytest.mark.parametrize("variant", ["xparam", "epsparam"])
def test_parameter_names_and_shapes_match_manifest(shared_dir, variant):
    import json

    manifest = json.loads((shared_dir / "reference" / "cdc" / f"manifest_{variant}.json").read_text())
    layout = manifest["checkpoint_top_level"]["model"]
    prefix = "context_fn.prior."
    want = [(k[len(prefix):], tuple(v["shape"])) for k, v in layout.items() if k.startswith(prefix)]
    got = [(k, tuple(v.shape)) for k, v in FlexiblePrior(256).state_dict().items()]
    assert got == want  # same names, shapes and order as the released checkpoints


@pytest.mark.parametrize("variant", FIXTURES)
def test_fixture_hyper_likelihood(shared_dir, variant):
    prior, expected = load_fixture_prior(shared_dir, variant)
    with torch.no_grad():
        got = prior.likelihood(expected["q_hyper_latent"])
    torch.testing.assert_close(got, expected["hyper_likelihood"], rtol=1e-5, atol=1e-9)


def test_likelihood_sums_to_one_and_is_bounded():
    torch.manual_seed(0)
    prior = FlexiblePrior(4)
    with torch.no_grad():
        for a in prior.a:
            a.normal_()
        grid = torch.arange(-200, 201, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 4, 1, 1)
        p = prior.likelihood(grid)
    assert p.min() >= 1e-9
    total = p.sum(0).flatten()
    torch.testing.assert_close(total, torch.ones(4), atol=1e-4, rtol=0)
    far = prior.likelihood(torch.full((1, 4, 1, 1), 1e6))
    assert torch.all(far == 1e-9)


def test_init_matches_spec():
    prior = FlexiblePrior(2)
    w0 = prior.affine[0].weight
    assert torch.allclose(w0, torch.full_like(w0, math.log(math.expm1(1 / 10 ** 0.25 / 3))))
    assert torch.all(prior.medians == 0)
    assert not prior.medians.requires_grad


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        FlexiblePrior(3).logits_cumulative(torch.zeros(1, 4, 2, 2))
