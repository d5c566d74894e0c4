"""Building blocks shared by CDC's denoiser and compressor.

Submodule names are part of the contract: they make up the official state-dict keys, so `block.0`, `mlp.1`,
`fn.norm`, `fn.fn.to_qkv` etc. must stay exactly as they are.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis only, per pixel: (x − mean_C) / sqrt(var_C + eps) · g + b.

    Not `nn.LayerNorm` over (C,H,W) nor `GroupNorm(1, C)`: both also normalise over space. PyTorch has no
    channel-only norm for NCHW tensors, hence this small hand-written module.

    By default the variance is `torch.var(unbiased=False)` exactly as the official code computes it, so the
    quantised latents equal the official ones bit for bit. `fast = True` (set through :func:`set_fast_norm`)
    uses a two-pass variance instead: the same maths, 0-15% faster per U-Net call on CPU (torch.var's strided
    reduction over the channel axis is slow), but not bit-identical; it flipped one quantised latent of a
    full-size model at Kodak size (y − μ = 7.4999976 officially, 7.5000000 with two passes).
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.fast = False
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.fast:
            mean = x.mean(dim=1, keepdim=True)
            centred = x - mean
            var = (centred * centred).mean(dim=1, keepdim=True)
            return centred / (var + self.eps).sqrt() * self.g + self.b
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)  # the official operation order
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


def set_fast_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Switch every :class:`ChannelLayerNorm` inside `module` to the two-pass (fast, not bit-exact) variance."""
    for sub in module.modules():
        if isinstance(sub, ChannelLayerNorm):
            sub.fast = enabled
    return module


class Block(nn.Module):
    """Conv (7x7 if `large`, else 3x3) → channel LayerNorm → ReLU."""

    def __init__(self, dim_in: int, dim_out: int, large: bool = False) -> None:
        super().__init__()
        k = 7 if large else 3
        self.block = nn.Sequential(
            nn.Conv2d(dim_in, dim_out, k, padding=k // 2),
            ChannelLayerNorm(dim_out),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class ResnetBlock(nn.Module):
    """block1 → (+ time embedding, after block1's ReLU) → block2 (always 3x3) → + res_conv(x)."""

    def __init__(self, dim_in: int, dim_out: int, time_emb_dim: int | None = None, large: bool = False) -> None:
        super().__init__()
        self.mlp = (nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(time_emb_dim, dim_out))
                    if time_emb_dim is not None else None)
        self.block1 = Block(dim_in, dim_out, large=large)
        self.block2 = Block(dim_out, dim_out)
        self.res_conv = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: Tensor, time_emb: Tensor | None = None) -> Tensor:
        h = self.block1(x)
        if self.mlp is not None and time_emb is not None:
            h = h + self.mlp(time_emb)[:, :, None, None]
        h = self.block2(h)
        return h + self.res_conv(x)


class LinearAttention(nn.Module):
    """One-head linear attention; softmax over positions on k only (q gets none, unlike lucidrains')."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim ** -0.5
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.to_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.to_qkv(x).reshape(b, 3, c, h * w).unbind(1)
        q = q * self.scale
        k = k.softmax(dim=-1)
        context = torch.bmm(k, v.transpose(1, 2))            # [b, d, e] = Σ_n k[d,n] v[e,n]
        out = torch.bmm(context.transpose(1, 2), q)           # [b, e, n] = Σ_d context[d,e] q[d,n]
        return self.to_out(out.reshape(b, c, h, w))


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x


def attention_block(dim: int) -> Residual:
    """x + attn(LN(x)): the only way CDC uses its attention (keys `fn.norm.*`, `fn.fn.to_qkv/to_out.*`)."""
    return Residual(PreNorm(dim, LinearAttention(dim)))


class Downsample(nn.Module):
    """Conv 3x3, stride 2, padding 1: exactly halves even sizes."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Transposed conv 4x4, stride 2, padding 1: exactly doubles the size."""

    def __init__(self, dim_in: int, dim_out: int | None = None) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(dim_in, dim_out or dim_in, 4, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class LearnedSinusoidalEmbedding(nn.Module):
    """Random-Fourier time features [t, sin(2π t w), cos(2π t w)] with learned `weights` (x-param "index" mode)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, t: Tensor) -> Tensor:
        t = t.reshape(-1, 1).float()
        freqs = t * self.weights[None, :] * 2 * torch.pi
        return torch.cat([t, freqs.sin(), freqs.cos()], dim=-1)
