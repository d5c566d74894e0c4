"""A faster CPU copy of the FID Inception: batch norm folded into each convolution, run by oneDNN.

The TorchScript file runs every one of its 94 convolutions as ``conv2d`` (weight cast on every call), then a
separate ``batch_norm``, then ``relu``, through the JIT's profiling executor; ``torch.jit.freeze`` cannot fold
that pattern. Here the same network is rebuilt from the file's own tensors as ``nn.Conv2d`` layers whose weight and
bias absorb the batch norm (``w * rsqrt(var + 1e-3)``, ``beta - mean * rsqrt(var + 1e-3)``, the file's epsilon),
then scripted, frozen and handed to ``torch.jit.optimize_for_inference`` (prepacked oneDNN convolutions with the
ReLU fused). Same float32 arithmetic in another order: features differ from the file's by float rounding only
(at most 1.2e-5 on 4 Kodak images x 3 JPEG qualities). :func:`folded_inception` checks the copy against the file on a probe batch and
returns None when they disagree, so an unexpected file is always run as it is.

Hand-written because no library builds this network from clean-fid's file: pytorch-fid's blocks load only
pytorch-fid's own weight file, and torchvision's Inception v3 differs from TensorFlow's 2015 graph.
"""

from __future__ import annotations

import warnings
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3           # the file's batch_norm epsilon
PROBE_ATOL = 1e-4       # the copy must match the file this closely on the probe batch, or it is not used


def _child(root, dotted: str):
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


class _ConvReLU(nn.Module):
    def __init__(self, block) -> None:
        super().__init__()
        weight = block.weight.detach().float()
        scale = torch.rsqrt(block.var.detach().float() + BN_EPS)
        padding = block.padding if isinstance(block.padding, (list, tuple)) else (block.padding, block.padding)
        self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), block.stride,
                              tuple(padding), bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(weight * scale[:, None, None, None])
            self.conv.bias.copy_(block.beta.detach().float() - block.mean.detach().float() * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class _AvgPool3(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 3, 1, 1, False, False)   # the file's: count_include_pad=False


class _MaxPool3(nn.Module):
    def __init__(self, stride: int = 2, padding: int = 0) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 3, self.stride, self.padding)


class _Branches(nn.Module):
    """Inception A-D: the towers side by side, concatenated on channels."""

    def __init__(self, towers: list[nn.Module]) -> None:
        super().__init__()
        self.towers = nn.ModuleList(towers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: List[torch.Tensor] = []
        for tower in self.towers:
            outs.append(tower(x))
        return torch.cat(outs, 1)


class _InceptionE(nn.Module):
    """mixed_9 / mixed_10: towers that split into 1x3 and 3x1 halves."""

    def __init__(self, layers, name: str, pool: nn.Module) -> None:
        super().__init__()
        conv = lambda child: _ConvReLU(_child(layers, f"{name}.{child}"))  # noqa: E731
        self.conv, self.a, self.b = conv("conv"), conv("tower_conv"), nn.Sequential(conv("tower_1_conv"),
                                                                                    conv("tower_1_conv_1"))
        self.a1, self.a2 = conv("tower_mixed_conv"), conv("tower_mixed_conv_1")
        self.b1, self.b2 = conv("tower_1_mixed_conv"), conv("tower_1_mixed_conv_1")
        self.pool, self.pool_conv = pool, conv("tower_2_conv")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.a(x), self.b(x)
        return torch.cat([self.conv(x), self.a1(a), self.a2(a), self.b1(b), self.b2(b),
                          self.pool_conv(self.pool(x))], 1)


def _rebuild(layers) -> nn.Module:
    """The file's ``layers`` as eager modules with folded batch norm (its layout: see ``layers.code``)."""
    conv = lambda name: _ConvReLU(_child(layers, name))  # noqa: E731

    def tower(name: str, n: int) -> nn.Sequential:
        return nn.Sequential(*[conv(f"{name}.conv" + ("" if i == 0 else f"_{i}")) for i in range(n)])

    modules: list[nn.Module] = [conv("conv"), conv("conv_1"), conv("conv_2"), _MaxPool3(),
                                conv("conv_3"), conv("conv_4"), _MaxPool3()]
    for name in ("mixed", "mixed_1", "mixed_2"):      # Inception A
        modules.append(_Branches([conv(f"{name}.conv"), tower(f"{name}.tower", 2), tower(f"{name}.tower_1", 3),
                                  nn.Sequential(_AvgPool3(), conv(f"{name}.tower_2.conv"))]))
    modules.append(_Branches([conv("mixed_3.conv"), tower("mixed_3.tower", 3), _MaxPool3()]))   # B
    for name in ("mixed_4", "mixed_5", "mixed_6", "mixed_7"):   # C
        modules.append(_Branches([conv(f"{name}.conv"), tower(f"{name}.tower", 3), tower(f"{name}.tower_1", 5),
                                  nn.Sequential(_AvgPool3(), conv(f"{name}.tower_2.conv"))]))
    modules.append(_Branches([tower("mixed_8.tower", 2), tower("mixed_8.tower_1", 4), _MaxPool3()]))  # D
    modules += [_InceptionE(layers, "mixed_9", _AvgPool3()), _InceptionE(layers, "mixed_10", _MaxPool3(1, 1)),
                nn.AvgPool2d(8, 8)]
    return nn.Sequential(*modules).eval()


def folded_inception(layers, probe: torch.Tensor):
    """The optimised copy of ``layers`` (CPU), or None when it cannot be built or disagrees on ``probe``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation notices; the API still works
            network = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(_rebuild(layers))))
        with torch.inference_mode():
            same = torch.allclose(network(probe), layers(probe), rtol=0, atol=PROBE_ATOL)
    except (AttributeError, RuntimeError, TypeError, ValueError):  # not this layout: run the file as it is
        return None
    return network if same else None
