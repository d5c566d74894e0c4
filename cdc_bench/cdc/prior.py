"""Factorised hyper-prior of CDC (Ballé et al. 2018 non-parametric density).

Parameter names and shapes match the official checkpoints exactly (`_medians`, `affine.{k}.weight/bias`,
`a.{k}`), so `load_state_dict(strict=True)` works on `context_fn.prior.*`. CompressAI's EntropyBottleneck
implements the same density but with different parameter names/shapes (`_matrices`, `_biases`, `_factors`) and
a different median convention, so we keep our own module and only borrow CompressAI's coder (see entropy.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_BOUND = 1e-9
FILTERS = (1, 3, 3, 3, 1)


class FlexiblePrior(nn.Module):
    """Per-channel learned CDF: logit(v) = f_3(g_2(f_2(... g_0(f_0(v)))))."""

    def __init__(self, channels: int, init_scale: float = 10.0 ** 0.25) -> None:
        super().__init__()
        self.channels = int(channels)
        n = len(FILTERS) - 1
        self.affine = nn.ModuleList()
        for k in range(n):
            fin, fout = FILTERS[k], FILTERS[k + 1]
            layer = nn.Module()
            init = math.log(math.expm1(1.0 / init_scale / fout))
            layer.weight = nn.Parameter(torch.full((channels, 1, 1, fin, fout), init))
            layer.bias = nn.Parameter(torch.rand(channels, 1, 1, 1, fout) - 0.5)
            self.affine.append(layer)
        self.a = nn.ParameterList(
            [nn.Parameter(torch.zeros(channels, 1, 1, 1, FILTERS[k + 1])) for k in range(n - 1)]
        )
        self._medians = nn.Parameter(torch.zeros(1, channels, 1, 1))

    @property
    def medians(self) -> torch.Tensor:
        """Per-channel medians, shape [1, C, 1, 1], detached (used as quantisation offsets)."""
        return self._medians.detach()

    def logits_cumulative(self, v: torch.Tensor) -> torch.Tensor:
        """Cumulative logit of each element of `v` (N, C, H, W) under its channel's density."""
        if v.dim() != 4 or v.shape[1] != self.channels:
            raise ValueError(f"FlexiblePrior expects (N, {self.channels}, H, W), got {tuple(v.shape)}")
        h = v.transpose(0, 1).unsqueeze(-1)  # (C, N, H, W, 1): each channel uses its own parameters
        last = len(self.affine) - 1
        for k, layer in enumerate(self.affine):
            h = torch.matmul(h, F.softplus(layer.weight)) + layer.bias
            if k < last:
                h = h + torch.tanh(self.a[k]) * torch.tanh(h)
        return h.squeeze(-1).transpose(0, 1)

    def likelihood(self, z_hat: torch.Tensor) -> torch.Tensor:
        """P(z_hat) = mass of [z_hat-0.5, z_hat+0.5], lower-bounded at 1e-9.

        The sign flip evaluates the upper tail with sigmoids of negative arguments (numerically stable).
        """
        lower = self.logits_cumulative(z_hat - 0.5)
        upper = self.logits_cumulative(z_hat + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.clamp_min(LIKELIHOOD_BOUND)

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.likelihood(z_hat)
