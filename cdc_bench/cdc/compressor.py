"""CDC's compressor: analysis transform, hyper-prior, and the context decoder whose multi-scale
features condition the denoiser. `ResnetCompressor` is the x-param release, `BigCompressor` the eps-param one;
they differ only in slot layout (eps has a disabled VBR identity in the middle of each level) and the decoder's
channel list.

No entropy coding here: `entropy.py` turns ẑ/ŷ into bits. These modules only compute tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from .layers import Downsample, ResnetBlock, Upsample
from .prior import FlexiblePrior

SCALE_BOUND = 0.1  # the conditional Gaussian's scale is clamped here (plain clamp, no exp/softplus)


def quantize(x: Tensor, offset: Tensor) -> Tensor:
    """round(x − offset) + offset; `torch.round` rounds half to even, as the official code does."""
    return torch.round(x - offset) + offset


@dataclass
class CompressorOutput:
    """Everything the compressor computes for one batch (eval mode)."""

    latent: Tensor
    hyper_latent: Tensor
    q_hyper_latent: Tensor
    latent_mean: Tensor
    latent_scale: Tensor  # clamped at SCALE_BOUND
    q_latent: Tensor
    context: list[Tensor]


class _Compressor(nn.Module):
    """Builds `prior`, `enc`, `dec`, `hyper_enc`, `hyper_dec` and runs them. `vbr_slot` says whether
    each level has an identity between the ResnetBlock and the resampler (eps-param layout)."""

    vbr_slot: bool = False

    def __init__(self, dim: int, dim_mults: Sequence[int], hyper_dims_mults: Sequence[int], channels: int,
                 out_channels: int, dec_dims: Sequence[int]) -> None:
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels
        self.dims = [channels, *(dim * m for m in dim_mults)]
        self.hyper_dims = [self.dims[-1], *(dim * m for m in hyper_dims_mults)]
        self.hyper_dec_dims = [2 * self.dims[-1], *(dim * m for m in hyper_dims_mults)][::-1]
        # Module creation order fixes the state-dict order: prior, enc, dec, hyper_enc, hyper_dec.
        self.prior = FlexiblePrior(self.hyper_dims[-1])
        self.enc = nn.ModuleList(
            self._level(ResnetBlock(a, b, None, large=i == 0), Downsample(b))
            for i, (a, b) in enumerate(zip(self.dims[:-1], self.dims[1:])))
        pairs = list(zip(dec_dims[:-1], dec_dims[1:]))
        self.dec = nn.ModuleList(
            self._level(ResnetBlock(a, a if i == len(pairs) - 1 else b), Upsample(a if i == len(pairs) - 1 else b, b))
            for i, (a, b) in enumerate(pairs))
        hyper = list(zip(self.hyper_dims[:-1], self.hyper_dims[1:]))
        self.hyper_enc = nn.ModuleList(
            self._act_level(nn.Conv2d(a, b, 3, 1, 1) if i == 0 else nn.Conv2d(a, b, 5, 2, 2), i < len(hyper) - 1)
            for i, (a, b) in enumerate(hyper))
        hyper_dec = list(zip(self.hyper_dec_dims[:-1], self.hyper_dec_dims[1:]))
        self.hyper_dec = nn.ModuleList(
            self._act_level(nn.ConvTranspose2d(a, b, 5, 2, 2, output_padding=1) if i < len(hyper_dec) - 1
                            else nn.Conv2d(a, b, 3, 1, 1), i < len(hyper_dec) - 1)
            for i, (a, b) in enumerate(hyper_dec))

    def _level(self, block: nn.Module, resample: nn.Module) -> nn.ModuleList:
        return nn.ModuleList([block, nn.Identity(), resample] if self.vbr_slot else [block, resample])

    def _act_level(self, conv: nn.Module, act: bool) -> nn.Sequential:
        tail = nn.LeakyReLU(0.2) if act else nn.Identity()
        return nn.Sequential(conv, nn.Identity(), tail) if self.vbr_slot else nn.Sequential(conv, tail)

    # --- the API the codec calls --------------------------------------------------------------------------------
    def analysis(self, x: Tensor) -> Tensor:
        """y = enc(x); x in [−1,1], B×3×H×W with H, W multiples of 64."""
        h, w = x.shape[-2:]
        if h % 64 or w % 64:
            raise ValueError(f"CDC compressor needs height and width multiples of 64, got {h}x{w} (pad first)")
        for level in self.enc:
            x = level[-1](level[0](x))
        return x

    def hyper_analysis(self, y: Tensor) -> Tensor:
        for level in self.hyper_enc:
            y = level(y)
        return y

    def hyper_synthesis(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, σ) from ẑ: first channel half is the mean, second half the scale, clamped at min 0.1."""
        for level in self.hyper_dec:
            z_hat = level(z_hat)
        mean, scale = z_hat.chunk(2, dim=1)
        return mean, scale.clamp(min=SCALE_BOUND)

    def context(self, y_hat: Tensor) -> list[Tensor]:
        """Context features from ŷ (which includes μ), full resolution first."""
        outputs = []
        for level in self.dec:
            y_hat = level[-1](level[0](y_hat))
            outputs.append(y_hat)
        return outputs[::-1]

    def quantize_hyper(self, z: Tensor) -> Tensor:
        return quantize(z, self.prior.medians)

    def latents(self, x: Tensor) -> CompressorOutput:
        """The official compressor's steps in eval mode (rounding, never training noise): everything an encoder needs;
        `context` is left empty (the decoder computes it from the decoded ŷ)."""
        y = self.analysis(x)
        z = self.hyper_analysis(y)
        z_hat = self.quantize_hyper(z)
        mean, scale = self.hyper_synthesis(z_hat)
        return CompressorOutput(y, z, z_hat, mean, scale, quantize(y, mean), [])

    def forward(self, x: Tensor) -> CompressorOutput:
        """The official compressor's whole eval-mode pipeline, context included."""
        out = self.latents(x)
        out.context = self.context(out.q_latent)
        return out


class ResnetCompressor(_Compressor):
    """x-param compressor: decoder channels [d·r for r in reverse_dim_mults] + [out_channels]."""

    def __init__(self, dim: int = 64, dim_mults: Sequence[int] = (1, 2, 3, 4),
                 reverse_dim_mults: Sequence[int] = (4, 3, 2, 1), hyper_dims_mults: Sequence[int] = (4, 4, 4),
                 channels: int = 3, out_channels: int = 64) -> None:
        super().__init__(dim, dim_mults, hyper_dims_mults, channels, out_channels,
                         [dim * r for r in reverse_dim_mults] + [out_channels])


class BigCompressor(_Compressor):
    """eps-param compressor: decoder channels reverse([out_channels] + [d·m for m in dim_mults]); VBR slot off."""

    vbr_slot = True

    def __init__(self, dim: int = 64, dim_mults: Sequence[int] = (1, 2, 3, 4),
                 hyper_dims_mults: Sequence[int] = (4, 4, 4), channels: int = 3, out_channels: int = 3) -> None:
        super().__init__(dim, dim_mults, hyper_dims_mults, channels, out_channels,
                         [out_channels, *(dim * m for m in dim_mults)][::-1])
