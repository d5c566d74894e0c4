"""StableCodec's auxiliary encoder: the analysis transform ``g_a`` of ELIC (He et al., CVPR 2022).

The official code builds the whole ELIC model of ELIC-Unofficial and keeps ``g_a``; ``elic_official.pth`` is that
model's plain state dict. CompressAI ships the same analysis transform (``Elic2022Official.g_a``: 5x5 stride-2
convolutions, residual bottleneck blocks, attention blocks, N=192, M=320), so we build it from CompressAI's layers
and only rename keys: ``g_a.analysis_transform.I.branch.{0,2,4}`` (ELIC-Unofficial) ->
``I.conv{1,2,3}`` (CompressAI's ``ResidualBottleneckBlock``); convolutions and attention blocks keep their names.
"""

from __future__ import annotations

import re

N, M = 192, 320
_PREFIX = "g_a.analysis_transform."
_BRANCH = {"0": "conv1", "2": "conv2", "4": "conv3"}


def build_analysis_transform():
    """ELIC's g_a with CompressAI's layers (the same sequence as ``compressai.models.Elic2022Official.g_a``)."""
    from compressai.layers import AttentionBlock
    from compressai.models.sensetime import ResidualBottleneckBlock
    from compressai.models.utils import conv
    from torch import nn

    def res3():
        return [ResidualBottleneckBlock(N, N) for _ in range(3)]

    return nn.Sequential(conv(3, N, 5, 2), *res3(), conv(N, N, 5, 2), *res3(), AttentionBlock(N),
                         conv(N, N, 5, 2), *res3(), conv(N, M, 5, 2), AttentionBlock(M))


def analysis_state_dict(elic_state: dict) -> dict:
    """The ``g_a`` entries of an ELIC-Unofficial state dict, renamed for :func:`build_analysis_transform`."""
    out = {}
    for key, value in elic_state.items():
        if not key.startswith(_PREFIX):
            continue
        rest = key[len(_PREFIX):]
        rest = re.sub(r"^(\d+)\.branch\.(\d)\.", lambda m: f"{m.group(1)}.{_BRANCH[m.group(2)]}.", rest)
        out[rest] = value
    return out


def official_state_dict(ours: dict) -> dict:
    """Inverse of :func:`analysis_state_dict` (our g_a keys -> ELIC-Unofficial's), for writing test checkpoints."""
    inverse = {v: k for k, v in _BRANCH.items()}
    return {_PREFIX + re.sub(r"^(\d+)\.(conv[123])\.", lambda m: f"{m.group(1)}.branch.{inverse[m.group(2)]}.", k): v
            for k, v in ours.items()}
