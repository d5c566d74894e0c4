"""Image-quality metrics.

Per-image metrics compare one original with its reconstruction and are registered in :data:`PER_IMAGE`
with their conventions (direction, unit), so tables and figures read them instead of hard-coding them.
Dataset-level metrics (FID, KID) live in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..registry import UnknownNameError


@dataclass(frozen=True)
class MetricInfo:
    name: str           # CLI name, e.g. "ms-ssim"
    column: str         # results column, e.g. "ms_ssim"
    lower_better: bool
    label: str          # axis label, e.g. "MS-SSIM"
    compute: Callable[..., float] | None = None   # (original, recon, device=...) -> float; None: dataset-level
    weights: tuple[str, ...] = ()                 # weight files it needs (names in cdc_bench.weights)
    dataset_level: bool = False


METRICS: dict[str, MetricInfo] = {}


def register_metric(info: MetricInfo) -> MetricInfo:
    METRICS[info.name] = info
    return info


def get_metric(name: str) -> MetricInfo:
    _load_builtin()
    if name not in METRICS:
        raise UnknownNameError("metric", name, sorted(METRICS))
    return METRICS[name]


def metric_names() -> list[str]:
    _load_builtin()
    return sorted(METRICS)


def metric_for_column(column: str) -> MetricInfo | None:
    _load_builtin()
    return next((m for m in METRICS.values() if m.column == column), None)


def _load_builtin() -> None:
    import importlib

    for module in ("distortion", "perceptual", "fid"):
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ImportError as err:
            if err.name != f"{__name__}.{module}":
                raise


def to_float_tensor(image: np.ndarray, device: str = "cpu"):
    """H x W x 3 uint8 -> 1 x 3 x H x W float32 tensor in [0, 255]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().to(device)
