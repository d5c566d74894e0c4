"""Noise schedules and the DDIM sampling schedule.

Training schedules are computed in float64 numpy and cast to float32 only at the end, as the official code does;
the sampling schedule's indices are those of the official float32 `torch.linspace` truncated with `.long()` (a
float64 linspace gives different indices for e.g. S = 15 at T = 8193), computed so that they do not depend on the
device or the kernel (see :func:`official_linspace`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

VARIANTS = ("x", "eps")


def cosine_betas(timesteps: int, s: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal cosine schedule on the grid linspace(0, T+1, T+1), clipped to [0, 0.999] (float64)."""
    steps = timesteps + 1
    x = np.linspace(0, steps, steps, dtype=np.float64)
    f = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    f = f / f[0]
    return np.clip(1 - (f[1:] / f[:-1]), 0, 0.999)


def linear_betas(timesteps: int) -> np.ndarray:
    """DDPM linear schedule rescaled to T steps: linspace(1e-4·1000/T, 0.02·1000/T, T) (float64)."""
    scale = 1000 / timesteps
    return np.linspace(1e-4 * scale, 0.02 * scale, timesteps, dtype=np.float64)


BETA_SCHEDULES = {"cosine": cosine_betas, "linear": linear_betas}


def training_buffers(schedule: str, timesteps: int, with_snr: bool) -> dict[str, Tensor]:
    """The `train_*` buffers in official state-dict order (float32, shape [T]); `train_snr` only for x-param."""
    if schedule not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta schedule {schedule!r} (expected one of {sorted(BETA_SCHEDULES)})")
    betas = BETA_SCHEDULES[schedule](timesteps)
    acp = np.cumprod(1.0 - betas, axis=0)  # float64 cumulative product, cast afterwards
    arrays = {}
    if with_snr:
        arrays["train_snr"] = acp / (1 - acp)
    arrays.update({
        "train_betas": betas,
        "train_alphas_cumprod": acp,
        "train_sqrt_alphas_cumprod": np.sqrt(acp),
        "train_sqrt_one_minus_alphas_cumprod": np.sqrt(1 - acp),
        "train_sqrt_recip_alphas_cumprod": np.sqrt(1 / acp),
        "train_sqrt_recipm1_alphas_cumprod": np.sqrt(1 / acp - 1),
    })
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in arrays.items()}


def official_linspace(end: int, steps: int) -> np.ndarray:
    """float32 ``torch.linspace(0, end, steps)`` as its kernel computes it with a fused multiply-add, on any machine.

    The kernel takes ``step = end / (S−1)`` in float32 and gives ``step·i`` for i < S/2 and ``end − step·(S−1−i)``
    above. CUDA compiles the second form to one FMA (a single rounding); a kernel without FMA rounds twice and gives
    other indices for 78 step counts in 2..1000 at T = 8193 (15, 27, ...) and 8 at T = 20000. Both forms are exact
    in float64 here (24-bit step times an index below 2^21, against an integer end below 2^21), so one float32
    rounding of the float64 value is the FMA's result, whatever the CPU, GPU or torch version. Hand-written
    because no library exposes "linspace with fused rounding" as such.
    """
    if steps == 1:
        return np.zeros(1, dtype=np.float32)  # torch.linspace(start, end, 1) == [start]
    if not 0 <= end < 2**21 or steps > 2**21:
        raise ValueError(f"linspace of 0..{end} in {steps} steps is outside the exactly emulated range")
    step = np.float64(np.float32(end) / np.float32(steps - 1))  # the kernel's float32 division
    i = np.arange(steps, dtype=np.float64)
    exact = np.where(i < steps // 2, step * i, np.float64(end) - step * (steps - 1 - i))
    return exact.astype(np.float32)


def schedule_indices(num_timesteps: int, steps: int, variant: str) -> Tensor:
    """Training-timestep index of each sampling position 0..S−1 (long).

    The official float32 `linspace(0, T−1, S)` (:func:`official_linspace`) truncated toward zero. x-param special-cases S = 1 → [T−1] (start
    from pure noise); eps-param does not, so its S = 1 gives [0].
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown CDC variant {variant!r} (expected 'x' or 'eps')")
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be between 1 and T={num_timesteps}, got {steps}")
    if steps == 1 and variant == "x":
        return torch.tensor([num_timesteps - 1], dtype=torch.long)
    return torch.from_numpy(official_linspace(num_timesteps - 1, steps)).long()


@dataclass(frozen=True)
class SampleSchedule:
    """Everything the DDIM loop needs, per schedule position (visited from S−1 down to 0)."""

    variant: str           # "x" (network predicts x0; x0 clamped to [−1, 1]) | "eps" (predicts noise; no clamp)
    index: Tensor          # [S] long, training timestep of each position
    alphas: Tensor         # [S] float32, ᾱ at index
    alphas_prev: Tensor    # [S] float32, ᾱ of the previous (less noisy) position; 1.0 at position 0
    sigmas: Tensor         # [S] float32, DDIM σ for eta = 1 (the sampler scales it by eta)
    time_in: Tensor        # [S] float32, the denoiser's time input: index/T (x) or position/S (eps)

    @property
    def steps(self) -> int:
        return int(self.index.numel())

    def to(self, device: torch.device | str) -> "SampleSchedule":
        return SampleSchedule(self.variant, *(t.to(device) for t in
                                              (self.index, self.alphas, self.alphas_prev, self.sigmas, self.time_in)))


def sample_schedule(alphas_cumprod: Tensor, steps: int, variant: str, index_time: bool = False) -> SampleSchedule:
    """DDIM schedule from the model's float32 `train_alphas_cumprod` buffer (the checkpoint's values).

    `index_time`: the x-param U-Net with `embd_type="index"` takes the integer timestep, not index/T.
    """
    alphas_cumprod = alphas_cumprod.detach().float().cpu()
    num_timesteps = alphas_cumprod.numel()
    index = schedule_indices(num_timesteps, steps, variant)
    a = alphas_cumprod[index]
    a_prev = torch.cat([torch.ones(1, dtype=torch.float32), a[:-1]])
    if variant == "x":
        sigmas = torch.sqrt(1 - a_prev) / torch.sqrt(1 - a) * torch.sqrt(1 - a / a_prev)
        time_in = index.float() if index_time else index.float() / num_timesteps
    else:  # same maths, the official eps code's rounding order
        sigmas = torch.sqrt((1 - a_prev) / (1 - a)) * torch.sqrt(1 - a / a_prev)
        time_in = torch.arange(steps, dtype=torch.float32) / steps
    return SampleSchedule(variant, index, a, a_prev, sigmas, time_in)
