"""The CDC model: denoiser + compressor + the training-schedule buffers, laid out exactly like the official
`GaussianDiffusion` so that `load_state_dict(strict=True)` works on the official state dicts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import Tensor, nn

from .compressor import BigCompressor, CompressorOutput, ResnetCompressor
from .schedules import training_buffers
from .unet import Unet


@dataclass(frozen=True)
class CDCConfig:
    """Every constructor argument of a CDC model. `variant` "x" predicts x0 (ResnetCompressor, cosine, T=8193);
    "eps" predicts noise (BigCompressor, linear, T=20000). `reverse_dim_mults` is used by x-param only."""

    variant: str = "x"
    dim: int = 64
    channels: int = 3
    context_channels: int = 64
    dim_mults: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    context_dim_mults: tuple[int, ...] = (1, 2, 3, 4)
    embd_type: str = "01"
    comp_dim: int = 64
    comp_dim_mults: tuple[int, ...] = (1, 2, 3, 4)
    reverse_dim_mults: tuple[int, ...] = (4, 3, 2, 1)
    hyper_dims_mults: tuple[int, ...] = (4, 4, 4)
    comp_out_channels: int = 64
    num_timesteps: int = 8193
    beta_schedule: str = "cosine"

    def __post_init__(self) -> None:
        if self.variant not in ("x", "eps"):
            raise ValueError(f"CDCConfig.variant must be 'x' or 'eps', got {self.variant!r}")
        for name in ("dim_mults", "context_dim_mults", "comp_dim_mults", "reverse_dim_mults", "hyper_dims_mults"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CDCConfig":
        """From `to_dict()` output, or from an official-style config (keys `Unet`, `ResnetCompressor` /
        `BigCompressor`, `GaussianDiffusion`, as in the fixtures' `*_config.json`)."""
        if "Unet" in data:
            return cls.from_official(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CDC config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_official(cls, data: dict[str, Any]) -> "CDCConfig":
        """From the official constructor arguments (the fixtures' config JSON layout)."""
        unet, diffusion = data["Unet"], data.get("GaussianDiffusion", {})
        is_x = "ResnetCompressor" in data
        comp = data["ResnetCompressor"] if is_x else data["BigCompressor"]
        pred = diffusion.get("pred_mode", "x" if is_x else "noise")
        return cls(
            variant="x" if pred == "x" else "eps",
            dim=unet["dim"], channels=unet.get("channels", 3), context_channels=unet["context_channels"],
            dim_mults=unet["dim_mults"], context_dim_mults=unet["context_dim_mults"],
            embd_type=unet.get("embd_type", "01"),
            comp_dim=comp["dim"], comp_dim_mults=comp["dim_mults"],
            reverse_dim_mults=comp.get("reverse_dim_mults", ()), hyper_dims_mults=comp["hyper_dims_mults"],
            comp_out_channels=comp["out_channels"],
            num_timesteps=diffusion.get("num_timesteps", 8193 if is_x else 20000),
            beta_schedule=diffusion.get("var_schedule", "cosine" if is_x else "linear"),
        )


RELEASED_CONFIGS: dict[str, CDCConfig] = {
    "x": CDCConfig(),
    "eps": CDCConfig(variant="eps", context_channels=3, reverse_dim_mults=(), comp_out_channels=3,
                     num_timesteps=20000, beta_schedule="linear"),
}


class CDCModel(nn.Module):
    """`denoise_fn` (U-Net) + `context_fn` (compressor) + `train_*` buffers, in official state-dict order."""

    train_alphas_cumprod: Tensor

    def __init__(self, config: CDCConfig) -> None:
        super().__init__()
        self.config = config
        # Buffers first: the official state dict lists them before the submodules.
        for name, value in training_buffers(config.beta_schedule, config.num_timesteps,
                                            with_snr=config.variant == "x").items():
            self.register_buffer(name, value)
        self.denoise_fn = Unet(dim=config.dim, channels=config.channels, context_channels=config.context_channels,
                               dim_mults=config.dim_mults, context_dim_mults=config.context_dim_mults,
                               embd_type=config.embd_type)
        if config.variant == "x":
            self.context_fn: ResnetCompressor | BigCompressor = ResnetCompressor(
                dim=config.comp_dim, dim_mults=config.comp_dim_mults, reverse_dim_mults=config.reverse_dim_mults,
                hyper_dims_mults=config.hyper_dims_mults, channels=config.channels,
                out_channels=config.comp_out_channels)
        else:
            self.context_fn = BigCompressor(
                dim=config.comp_dim, dim_mults=config.comp_dim_mults, hyper_dims_mults=config.hyper_dims_mults,
                channels=config.channels, out_channels=config.comp_out_channels)

    def compress(self, x: Tensor) -> CompressorOutput:
        """Compressor pass on x in [−1, 1] (B×3×H×W, multiples of 64): latents, (μ, σ), quantised latents,
        context. The context is computed here once per image, never per sampling step."""
        return self.context_fn(x)
