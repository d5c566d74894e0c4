"""Compressors: released layouts (keys, shapes, order, per-part parameter counts), shapes and size legality,
quantisation offsets."""
from __future__ import annotations

import json

import pytest
import torch

from cdc_bench.cdc.compressor import BigCompressor, ResnetCompressor, quantize

RELEASED = {
    "x": ("manifest_xparam.json", lambda: ResnetCompressor()),
    "eps": ("manifest_epsparam.json", lambda: BigCompressor()),
}


@pytest.mark.parametrize("variant", ["x", "eps"])
def test_released_compressor_matches_manifest(shared_dir, variant):
    file, build = RELEASED[variant]
    manifest = json.loads((shared_dir / "reference" / "cdc" / file).read_text())
    entries = manifest["checkpoint_top_level"]["ema" if variant == "x" else "model"]
    prefix = ("ema_model." if variant == "x" else "") + "context_fn."
    expected = {k[len(prefix):]: v["shape"] for k, v in entries.items() if k.startswith(prefix)}
    with torch.device("meta"):
        comp = build()
    ours = {k: list(v.shape) for k, v in comp.state_dict().items()}
    assert list(ours) == list(expected)
    assert ours == expected
    counts = manifest["param_counts"]
    for part in ("enc", "dec", "hyper_enc", "hyper_dec", "prior"):
        n = sum(p.numel() for p in getattr(comp, part).parameters())
        assert n == counts[f"context_fn.{part}"], part


@pytest.mark.parametrize("cls,ctx_channels", [(ResnetCompressor, [8, 8, 8, 16]), (BigCompressor, [3, 8, 8, 16])])
def test_shapes_through_the_pipeline(cls, ctx_channels):
    torch.manual_seed(0)
    kwargs = dict(dim=8, dim_mults=(1, 1, 2, 2), hyper_dims_mults=(2, 2, 2))
    if cls is ResnetCompressor:
        kwargs.update(reverse_dim_mults=(2, 2, 1, 1), out_channels=8)
    comp = cls(**kwargs).eval()
    x = torch.rand(1, 3, 128, 64) * 2 - 1
    with torch.no_grad():
        out = comp(x)
    assert out.latent.shape == (1, 16, 8, 4) and out.hyper_latent.shape == (1, 16, 2, 1)
    assert out.latent_mean.shape == out.latent_scale.shape == out.latent.shape
    assert float(out.latent_scale.min()) >= 0.1
    assert [c.shape[1] for c in out.context] == ctx_channels
    assert [tuple(c.shape[-2:]) for c in out.context] == [(128, 64), (64, 32), (32, 16), (16, 8)]
    # ŷ and ẑ sit on integer grids offset by μ and the medians
    frac = out.q_latent - out.latent_mean
    torch.testing.assert_close(frac, frac.round(), atol=1e-4, rtol=0)
    frac_z = out.q_hyper_latent - comp.prior.medians
    torch.testing.assert_close(frac_z, frac_z.round(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("h,w", [(64, 96), (96, 96), (32, 32), (128, 80)])
def test_sizes_not_multiple_of_64_are_refused(h, w):
    comp = ResnetCompressor(dim=4, dim_mults=(1, 1, 1, 1), reverse_dim_mults=(1, 1, 1, 1), hyper_dims_mults=(1, 1, 1),
                            out_channels=4)
    with pytest.raises(ValueError, match="multiples of 64"):
        comp.analysis(torch.zeros(1, 3, h, w))


def test_quantize_rounds_half_to_even_around_offset():
    offset = torch.tensor([0.25])
    x = torch.tensor([0.75, 1.75, -0.25, 0.6])  # x - offset = 0.5, 1.5, -0.5, 0.35
    torch.testing.assert_close(quantize(x, offset), torch.tensor([0.25, 2.25, 0.25, 0.25]))
