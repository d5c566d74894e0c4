"""CDC's denoising U-Net. It maps (x_t, time input, context features) to the network output and knows
nothing of schedules: what the time input means (index/T or position/S) is the sampler's business.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .layers import ChannelLayerNorm, Downsample, LearnedSinusoidalEmbedding, ResnetBlock, Upsample, attention_block


class Unet(nn.Module):
    """Context-conditioned U-Net: context[i] is concatenated to the features before down level i."""

    def __init__(self, dim: int, channels: int = 3, context_channels: int = 3,
                 dim_mults: Sequence[int] = (1, 2, 3, 4, 5, 6), context_dim_mults: Sequence[int] = (1, 2, 3, 4),
                 embd_type: str = "01") -> None:
        super().__init__()
        if dim_mults[0] != 1:
            # The last up level outputs dim*dim_mults[0] channels but final_conv expects dim (official crash).
            raise ValueError(f"CDC U-Net needs dim_mults[0] == 1, got {list(dim_mults)}")
        self.channels = channels
        self.embd_type = embd_type
        dims = [channels, *(dim * m for m in dim_mults)]
        context_dims = [context_channels, *(dim * m for m in context_dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))
        levels = len(in_out)

        if embd_type == "01":  # time input is a fraction in [0, 1]
            self.time_mlp = nn.Sequential(nn.Linear(1, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))
        elif embd_type == "index":  # time input is the integer timestep
            self.time_mlp = nn.Sequential(LearnedSinusoidalEmbedding(dim // 2), nn.Linear(dim // 2 + 1, dim * 4),
                                          nn.GELU(), nn.Linear(dim * 4, dim))
        else:
            raise ValueError(f"unknown embd_type {embd_type!r} (expected '01' or 'index')")

        self.downs = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(in_out):
            is_last = i == levels - 1
            with_ctx = not is_last and i < len(context_dims) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(d_in + (context_dims[i] if with_ctx else 0), d_out, dim, large=i == 0),
                ResnetBlock(d_out, d_out, dim),
                attention_block(d_out),
                Downsample(d_out) if not is_last else nn.Identity(),
            ]))

        self.ups = nn.ModuleList()
        for d_in, d_out in reversed(in_out[1:]):
            # Every up level upsamples: the official "is_last" test never fires here.
            self.ups.append(nn.ModuleList([
                ResnetBlock(d_out * 2, d_in, dim),
                ResnetBlock(d_in, d_in, dim),
                attention_block(d_in),
                Upsample(d_in),
            ]))

        # Created after `ups` to keep the official state-dict order (downs, ups, mid_*, final_conv).
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, dim)
        self.mid_attn = attention_block(mid)
        self.mid_block2 = ResnetBlock(mid, mid, dim)

        self.final_conv = nn.Sequential(ChannelLayerNorm(dim), nn.Conv2d(dim, channels, 7, padding=3))

    def forward(self, x: Tensor, time: Tensor, context: Sequence[Tensor]) -> Tensor:
        """`time`: (B,1) float fraction for "01", (B,) timestep for "index"; `context`: full resolution first."""
        t = self.time_mlp(time)
        skips = []
        for i, (res1, res2, attn, down) in enumerate(self.downs):
            if i < len(context):
                x = torch.cat([x, context[i]], dim=1)
            x = attn(res2(res1(x, t), t))
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t)), t)
        # L skips, L-1 pops: the level-0 skip is never used (as in the official code).
        for res1, res2, attn, up in self.ups:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(attn(res2(res1(x, t), t)))
        return self.final_conv(x)
