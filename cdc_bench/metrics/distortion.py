"""PSNR and MS-SSIM, computed as CompressAI >= 1.2.1's ``bench`` reports them (RGB, 8-bit, data_range 255).

CompressAI's bench (``compressai/utils/bench/codecs.py``) turns both images into float32 tensors in [0, 255] and
calls ``pytorch_msssim.ms_ssim(rec, original, data_range=255)``; PSNR is ``20 log10(255) - 10 log10(mse)``.

MS-SSIM is most of a classical sweep's time, so it is computed here with pytorch_msssim's own Gaussian filter on
the same float32 inputs, in the same operation order, but with less work per rate point:

- the original's half of the statistics (its pyramid, blurred mean and variance at the 5 scales) is computed once
  per image and reused for every rate point of that image (the runner runs an image's rate points together);
- the three blurs that depend on the reconstruction (x, x², x·y) go through the filter as one batch per scale,
  with the Gaussian window built once;
- the full SSIM map is formed only at the coarsest scale, where it is used (finer scales need only the
  contrast-structure term);
- the 2x2 average pooling between scales is four strided slices summed in avg_pool2d's order (4x faster here);
- no autograd (``inference_mode``).

Each image of a batch and each channel is blurred on its own in pytorch_msssim's grouped convolution, and every
other step is the same elementwise IEEE arithmetic in the same memory layout, so the value is bit-identical to
``pytorch_msssim.ms_ssim`` on CompressAI's tensors (tests check this on Kodak crops).
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import numpy as np

from . import MetricInfo

# pytorch_msssim's defaults, which CompressAI's bench uses.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE, WIN_SIGMA = 11, 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
MIN_SIDE = (WIN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1)  # 160: pytorch_msssim asserts the side is larger


def psnr(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """PSNR in dB over all RGB samples of two uint8 images (inf when identical).

    The squared error is an exact sum (integers in float64, below 2**53 for any image under 10**11 samples);
    CompressAI's float32 mean differs from it by ~1e-6 dB. No BLAS call (``np.dot`` would start OpenBLAS
    threads in every worker, over the thread budget the executor gives it).
    """
    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    diff = np.subtract(original, recon, dtype=np.float64)
    sse = float(np.square(diff, out=diff).sum())
    if sse == 0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE ** 2 * diff.size / sse)


def bench_tensor(image: np.ndarray, device: str = "cpu"):
    """H x W x 3 uint8 -> 1 x 3 x H x W float32 in [0, 255], with the strides CompressAI's bench gives it.

    The strides matter for bit-equality: they decide pytorch_msssim's convolution path and summation order
    (a tensor with the same values but another batch stride gives MS-SSIM values 1 ulp apart).
    """
    import torch

    # astype copies, so read-only images (the runner shares them) need no torch warning; uint8 -> float32 is exact.
    return torch.from_numpy(image.astype(np.float32)).to(device).unsqueeze(0).permute(0, 3, 1, 2)


@dataclass
class _Scale:
    """The original's half of the SSIM statistics at one scale."""

    image: object       # float32 tensor 1 x 3 x H x W (channels-last strides, as CompressAI's)
    mu: object          # its Gaussian-blurred mean
    mu_sq: object       # mu ** 2
    sigma_sq: object    # blur(image ** 2) - mu ** 2


class _OriginalCache:
    """The statistics of the last original seen (per thread), recomputed only when the pixels differ."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, original: np.ndarray, device: str) -> list[_Scale]:
        hit = getattr(self._local, "entry", None)
        if hit is not None and hit[1] == device and np.array_equal(hit[0], original):  # ~0.3 ms on Kodak
            return hit[2]
        scales = _original_scales(bench_tensor(original, device))
        self._local.entry = (np.array(original, copy=True), device, scales)
        return scales

    def clear(self) -> None:
        self._local.entry = None


_originals = _OriginalCache()


@functools.lru_cache(maxsize=8)
def _window(channels: int, device: str):
    """pytorch_msssim's 1-D Gaussian window, repeated per channel as its ms_ssim does."""
    from pytorch_msssim.ssim import _fspecial_gauss_1d

    return _fspecial_gauss_1d(WIN_SIZE, WIN_SIGMA).repeat([channels, 1, 1, 1]).to(device)


def _layout(x):
    """The memory layout torch's ops give results of x: channels-last for CompressAI's full-size tensors."""
    import torch

    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _downsample(x):
    """pytorch_msssim's ``F.avg_pool2d(x, 2, padding=[s % 2 for s in x.shape[2:]])``: the same sums in the same
    order into the same memory layout (so the same bits), as four strided slices; avg_pool2d is ~4x slower on
    these channels-last 3-channel images."""
    import torch
    import torch.nn.functional as F

    layout = _layout(x)  # what avg_pool2d gives its output; it decides the next scale's convolution path
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_h or pad_w:  # avg_pool2d's zero padding: windows start at -1; its bottom/right padding is never read
        x = F.pad(x, (pad_w, 0, pad_h, 0))
    shape = (*x.shape[:-2], x.shape[-2] // 2, x.shape[-1] // 2)
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=layout)
    torch.add(x[..., 0::2, 0::2], x[..., 0::2, 1::2], out=out)
    return out.add_(x[..., 1::2, 0::2]).add_(x[..., 1::2, 1::2]).div_(4)


def _blur_stack(x, second, third=None):
    """Gaussian blur of x, second (and third) in one grouped convolution, as a batch laid out like x.

    The batch keeps x's memory layout (channels-last at full scale, like CompressAI's tensors), so the SSIM maps
    and their means are formed in the same layout, hence the same summation order, as pytorch_msssim's.
    """
    import torch
    from pytorch_msssim.ssim import gaussian_filter

    parts = 2 if third is None else 3
    layout = _layout(x)
    stack = torch.empty((parts * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device, memory_format=layout)
    stack[0:1].copy_(x)
    torch.mul(x, second, out=stack[1:2])
    if third is not None:
        torch.mul(x, third, out=stack[2:3])
    return gaussian_filter(stack, _window(x.shape[1], str(x.device)))[:, None]


def _original_scales(y) -> list[_Scale]:
    scales = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        if level:
            y = _downsample(y)
        mu, blurred_sq = _blur_stack(y, y)
        mu_sq = mu.pow(2)
        scales.append(_Scale(y, mu, mu_sq, blurred_sq - mu_sq))
    return scales


def _ms_ssim_tensor(x, scales: list[_Scale]) -> float:
    """pytorch_msssim.ms_ssim(x, y) with y's statistics precomputed; same operations, same order."""
    import torch

    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    levels = len(MS_SSIM_WEIGHTS)
    mcs = []
    for level, y in enumerate(scales):
        if level:
            x = _downsample(x)
        mu1, blurred_xx, blurred_xy = _blur_stack(x, x, y.image)
        mu1_sq = mu1.pow(2)
        mu1_mu2 = mu1 * y.mu
        sigma1_sq = blurred_xx - mu1_sq
        sigma12 = blurred_xy - mu1_mu2
        cs_map = (2 * sigma12 + c2) / (sigma1_sq + y.sigma_sq + c2)
        if level < levels - 1:
            mcs.append(torch.relu(torch.flatten(cs_map, 2).mean(-1)))
        else:
            ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + y.mu_sq + c1)) * cs_map
            ssim_per_channel = torch.relu(torch.flatten(ssim_map, 2).mean(-1))
    weights = x.new_tensor(MS_SSIM_WEIGHTS)
    stacked = torch.stack(mcs + [ssim_per_channel], dim=0)
    return float(torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean())


def ms_ssim(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """MS-SSIM of uint8 RGB images, equal to CompressAI bench's ``ms_ssim(rec, original, data_range=255)``.

    Images whose shorter side is 160 px or less (too small for 5 scales with the 11-tap window) give NaN rather
    than an error: the metric is undefined there, and one tiny image must not end a sweep.
    """
    import torch

    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    if min(original.shape[:2]) <= MIN_SIDE:
        return math.nan
    with torch.inference_mode():
        return _ms_ssim_tensor(bench_tensor(recon, device), _originals.get(original, device))


PSNR = MetricInfo("psnr", "psnr", lower_better=False, label="PSNR", compute=psnr, unit="dB", precision=2,
                  compressai_key="psnr-rgb")
MS_SSIM = MetricInfo("ms-ssim", "ms_ssim", lower_better=False, label="MS-SSIM", compute=ms_ssim, range=(0.0, 1.0),
                     compressai_key="ms-ssim-rgb")
