"""Image-quality metrics and the one table of their conventions.

Each metric is a :class:`MetricInfo` in :data:`METRICS`: where its value is stored, its unit, how many decimals
tables print, its range, which way is better, and whether it is measured per image or over a dataset (FID, KID).
Tables and figures read these instead of special-casing metric names. The built-in metrics are registered by
import path, so listing them imports no network code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


from ..errors import UnknownNameError
from ..registry import Registry


@dataclass(frozen=True)
class MetricInfo:
    name: str           # CLI name, e.g. "ms-ssim"
    column: str         # results column, e.g. "ms_ssim"
    lower_better: bool | None   # None: unknown (a column no registered metric claims)
    label: str          # name on axes and in tables, without the unit, e.g. "MS-SSIM"
    compute: Callable[..., float] | None = None   # (original, recon, device=...) -> float; None: dataset-level
    weights: tuple[str, ...] = ()                 # weight files it needs (names in cdc_bench.weights)
    dataset_level: bool = False
    unit: str = ""                                # "dB", "" for unitless
    precision: int = 4                            # decimals in tables
    range: tuple[float | None, float | None] | None = None  # the values it can take, when bounded
    check: Callable[[], tuple[str, str] | None] | None = None  # () -> (what is missing, fix) or None: can run
    feature_space: str | None = None  # dataset-level metrics other than FID/KID: their features' store protocol
    packages: tuple[tuple[str, str], ...] = ()    # (module, fix) it imports when it computes: checked in pre-flight
    compressai_key: str | None = None             # its key in CompressAI's result JSON (``psnr-rgb``), if any
    min_samples: int | None = None                # fewer samples (FID: patches) than this make the value unreliable

    @property
    def arrow(self) -> str:
        return "" if self.lower_better is None else ("↓" if self.lower_better else "↑")

    @property
    def unit_label(self) -> str:
        """e.g. ``PSNR [dB]``."""
        return f"{self.label} [{self.unit}]" if self.unit else self.label

    @property
    def axis_label(self) -> str:
        """e.g. ``PSNR [dB] ↑``: the direction is written on the axis."""
        return f"{self.unit_label} {self.arrow}".strip()


METRICS: Registry[MetricInfo] = Registry("metric")
for _name, _target in {
    "psnr": "distortion:PSNR", "ms-ssim": "distortion:MS_SSIM",
    "lpips": "perceptual:LPIPS_ALEX", "lpips-vgg": "perceptual:LPIPS_VGG", "dists": "perceptual:DISTS",
    "fid": "fid:FID", "kid": "fid:KID",
    "ssim": "structural:SSIM", "vif": "structural:VIF", "fsim": "structural:FSIM", "gmsd": "structural:GMSD",
    "ms-gmsd": "structural:MS_GMSD", "haarpsi": "structural:HAARPSI",
    "ciede2000": "color:CIEDE2000",
    "psnr-y": "yuv:PSNR_Y", "psnr-u": "yuv:PSNR_U", "psnr-v": "yuv:PSNR_V", "psnr-yuv": "yuv:PSNR_YUV",
    "ssimulacra2": "ssimulacra2:SSIMULACRA2", "butteraugli": "butteraugli:BUTTERAUGLI",
    "fd-dinov2": "dinov2:FD_DINOV2", "cmmd": "cmmd:CMMD",
}.items():
    METRICS.register_lazy(_name, f"{__name__}.{_target}")

#: ``--metrics jpeg-ai``: the part of JPEG AI's objective set this package computes (its CTTC also lists IW-SSIM,
#: NLPD, VMAF and PSNR-HVS-M, which are not here). MS-SSIM is the RGB one of CompressAI's bench; JPEG AI's is on Y.
METRIC_PRESETS: dict[str, tuple[str, ...]] = {
    "jpeg-ai": ("ms-ssim", "fsim", "vif", "psnr-y", "psnr-u", "psnr-v", "psnr-yuv"),
}


def expand_metric_presets(names: list[str]) -> list[str]:
    """Metric names with each preset (``jpeg-ai``) replaced by its members, first occurrence kept."""
    out: list[str] = []
    for name in names:
        out.extend(METRIC_PRESETS.get(name, (name,)))
    return list(dict.fromkeys(out))


def register_metric(info: MetricInfo) -> MetricInfo:
    """Register a metric in this process (a third-party metric, or a test's)."""
    METRICS.register(info, name=info.name)
    return info


def get_metric(name: str) -> MetricInfo:
    return METRICS.get(name)


def metric_names() -> list[str]:
    return METRICS.names()


def metric_for_column(column: str) -> MetricInfo | None:
    """The metric stored in ``column`` (``ms_ssim``), or ``None`` when no registered metric claims it."""
    for name in METRICS.names():
        try:
            info = METRICS.get(name)
        except ImportError:  # an optional metric whose dependency is missing claims no column
            continue
        if info.column == column:
            return info
    return None


def lookup_metric(name: str) -> MetricInfo:
    """A metric by CLI name (``ms-ssim``) or column (``ms_ssim``)."""
    info = metric_for_column(name)
    if info is not None:
        return info
    try:
        return get_metric(name)
    except UnknownNameError:
        raise UnknownNameError("metric", name, metric_names()) from None
