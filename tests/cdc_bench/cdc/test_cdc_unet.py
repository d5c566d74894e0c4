"""Denoiser U-Net: released layout (keys, shapes, order, parameter count) and forward shapes."""
from __future__ import annotations

import json

import pytest
import torch

from cdc_bench.cdc.unet import Unet


def _manifest(shared_dir, name):
    return json.loads((shared_dir / "reference" / "cdc" / name).read_text())


@pytest.mark.parametrize("variant,file,context_channels", [("x", "manifest_xparam.json", 64),
                                                            ("eps", "manifest_epsparam.json", 3)])
def test_released_unet_matches_manifest(shared_dir, variant, file, context_channels):
    manifest = _manifest(shared_dir, file)
    entries = manifest["checkpoint_top_level"]["ema" if variant == "x" else "model"]
    prefix = ("ema_model." if variant == "x" else "") + "denoise_fn."
    expected = {k[len(prefix):]: v["shape"] for k, v in entries.items() if k.startswith(prefix)}
    with torch.device("meta"):
        net = Unet(dim=64, context_channels=context_channels, dim_mults=(1, 2, 3, 4, 5, 6),
                   context_dim_mults=(1, 2, 3, 4))
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert list(ours) == list(expected)  # same keys in the same order
    assert ours == expected
    assert sum(p.numel() for p in net.parameters()) == manifest["param_counts"]["denoise_fn"]


def test_forward_shapes_and_context_levels():
    torch.manual_seed(0)
    net = Unet(dim=8, context_channels=8, dim_mults=(1, 1, 2, 2, 2, 3), context_dim_mults=(1, 1, 2, 2)).eval()
    ctx = [torch.randn(2, c, 64 // 2 ** i, 32 // 2 ** i) for i, c in enumerate((8, 8, 8, 16))]
    x = torch.randn(2, 3, 64, 32)
    out = net(x, torch.rand(2, 1), ctx)
    assert out.shape == x.shape
    # the output depends on every context level it receives
    for i in range(4):
        changed = [c.clone() for c in ctx]
        changed[i] += 1.0
        assert not torch.allclose(net(x, torch.full((2, 1), 0.5), changed), net(x, torch.full((2, 1), 0.5), ctx))


def test_index_time_embedding_layout():
    net = Unet(dim=16, context_channels=3, dim_mults=(1, 2), context_dim_mults=(1,), embd_type="index")
    keys = net.state_dict()
    assert keys["time_mlp.0.weights"].shape == (4,)        # d/4 learned frequencies
    assert keys["time_mlp.1.weight"].shape == (64, 9)      # d/2 + 1 features -> 4d
    assert keys["time_mlp.3.weight"].shape == (16, 64)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="dim_mults"):
        Unet(dim=8, dim_mults=(2, 2))
    with pytest.raises(ValueError, match="embd_type"):
        Unet(dim=8, dim_mults=(1, 2), embd_type="sinusoidal")
