"""Building blocks: channel-only LayerNorm, linear attention (softmax on k only), ResnetBlock, resamplers."""
from __future__ import annotations

import pytest
import torch

from cdc_bench.cdc.layers import (Block, ChannelLayerNorm, Downsample, LinearAttention, ResnetBlock, Upsample,
                                  attention_block)


def test_channel_layernorm_normalises_each_pixel_over_channels_only():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 3) * 3 + 1
    norm = ChannelLayerNorm(5)
    with torch.no_grad():
        norm.g.copy_(torch.rand(1, 5, 1, 1) + 0.5)
        norm.b.copy_(torch.randn(1, 5, 1, 1))
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)  # biased variance, eps inside the square root
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.g + norm.b
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    # GroupNorm(1, C) also normalises over space: a different operation.
    assert not torch.allclose(torch.nn.functional.group_norm(x, 1, eps=1e-5), (x - mean) / torch.sqrt(var + 1e-5),
                              atol=1e-3)


def test_linear_attention_softmax_on_k_only():
    torch.manual_seed(1)
    attn = LinearAttention(6)
    x = torch.randn(2, 6, 3, 4)
    q, k, v = attn.to_qkv(x).reshape(2, 3, 6, 12).unbind(1)
    q = q * 6 ** -0.5
    context = torch.einsum("bdn,ben->bde", k.softmax(-1), v)
    out = attn.to_out(torch.einsum("bde,bdn->ben", context, q).reshape(2, 6, 3, 4))
    torch.testing.assert_close(attn(x), out, rtol=1e-5, atol=1e-6)
    # lucidrains' variant (softmax on q over channels too) gives something else
    q_soft = (q / 6 ** -0.5).softmax(-2) * 6 ** -0.5
    other = attn.to_out(torch.einsum("bde,bdn->ben", context, q_soft).reshape(2, 6, 3, 4))
    assert not torch.allclose(attn(x), other, atol=1e-3)


def test_attention_block_is_residual_prenorm_with_official_keys():
    block = attention_block(4)
    assert sorted(block.state_dict()) == ["fn.fn.to_out.bias", "fn.fn.to_out.weight", "fn.fn.to_qkv.weight",
                                          "fn.norm.b", "fn.norm.g"]
    x = torch.randn(1, 4, 2, 2)
    torch.testing.assert_close(block(x), x + block.fn.fn(block.fn.norm(x)))


def test_resnet_block_adds_time_after_block1_and_has_res_conv_only_when_needed():
    torch.manual_seed(2)
    rb = ResnetBlock(3, 5, time_emb_dim=7, large=True)
    assert rb.block1.block[0].kernel_size == (7, 7) and rb.block2.block[0].kernel_size == (3, 3)
    assert set(rb.state_dict()) >= {"mlp.1.weight", "res_conv.weight", "block1.block.1.g"}
    x, t = torch.randn(2, 3, 4, 4), torch.randn(2, 7)
    h = rb.block1(x) + rb.mlp(t)[:, :, None, None]
    torch.testing.assert_close(rb(x, t), rb.block2(h) + rb.res_conv(x))
    same = ResnetBlock(4, 4)
    assert not any(k.startswith(("res_conv", "mlp")) for k in same.state_dict())


@pytest.mark.parametrize("large,k", [(False, 3), (True, 7)])
def test_block_kernel(large, k):
    assert Block(2, 3, large=large).block[0].weight.shape == (3, 2, k, k)


def test_resamplers_halve_and_double_exactly():
    x = torch.randn(1, 4, 16, 8)
    assert Downsample(4)(x).shape == (1, 4, 8, 4)
    up = Upsample(4, 6)
    assert up.conv.weight.shape == (4, 6, 4, 4)
    assert up(x).shape == (1, 6, 32, 16)


def test_channel_layernorm_default_is_the_official_torch_var_bit_for_bit():
    from cdc_bench.cdc.layers import set_fast_norm

    torch.manual_seed(3)
    x = torch.randn(1, 64, 16, 16) * 7 + 3
    norm = ChannelLayerNorm(64)
    with torch.no_grad():
        norm.g.copy_(torch.rand(1, 64, 1, 1) + 0.5)
        norm.b.copy_(torch.randn(1, 64, 1, 1))
        # the official LayerNorm.forward, operation for operation
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        official = (x - mean) / (var + 1e-5).sqrt() * norm.g + norm.b
        assert torch.equal(norm(x), official)
        set_fast_norm(norm, True)
        fast = norm(x)
    torch.testing.assert_close(fast, official, rtol=1e-5, atol=1e-5)  # same maths, not necessarily same bits
