"""Loading official CDC checkpoint files and building models from a config or from the shapes.

* x-param trainer files `{"step", "model", "ema"}`: inference weights are `ema["ema_model.*"]` — never `model`
  nor `ema["online_model.*"]` (the online weights; the fixtures make them differ on purpose).
* eps-param files `{"step", "model"}`: `model` is the plain diffusion state dict.
* `loss_fn_vgg.*` (LPIPS-VGG training loss) is dropped: unused at inference, and never needs VGG weights.
"""
from __future__ import annotations

import json
import math
from functools import reduce
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..errors import CodecError
from .model import CDCConfig, CDCModel
from .schedules import BETA_SCHEDULES

EMA_PREFIX = "ema_model."
IGNORED_PREFIXES = ("loss_fn_vgg.",)


class CheckpointError(CodecError, ValueError):
    """A file is not a CDC checkpoint we can load; the message names the file and what to do."""


def load_state_dict_from_file(path: str | Path) -> dict[str, Tensor]:
    """The inference state dict of an official CDC file (see module docstring), loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"CDC checkpoint {path}: no such file")
    try:
        try:
            # mmap: the x-param files hold two weight copies (~432 MB); only the EMA half is ever read.
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):  # legacy (non-zip) files cannot be memory-mapped
                raise
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a loadable checkpoint"
        raise CheckpointError(f"CDC checkpoint {path}: cannot be read with torch.load(weights_only=True): "
                              f"{type(err).__name__}: {err}") from None
    return extract_state_dict(raw, str(path))


def extract_state_dict(raw: Any, where: str = "checkpoint") -> dict[str, Tensor]:
    """Pick the inference weights out of a loaded checkpoint object (trainer dict, EMA dict or bare state dict)."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{where}: expected a dict, got {type(raw).__name__}")
    if isinstance(raw.get("ema"), Mapping):
        source = _strip(raw["ema"], EMA_PREFIX, where + ' ["ema"]')
    elif any(k.startswith(EMA_PREFIX) for k in raw):
        source = _strip(raw, EMA_PREFIX, where)
    elif isinstance(raw.get("model"), Mapping):
        source = dict(raw["model"])
    elif any(str(k).startswith("denoise_fn.") for k in raw):
        source = dict(raw)
    else:
        keys = ", ".join(map(str, list(raw)[:8]))
        raise CheckpointError(f"{where}: not a CDC checkpoint (no 'ema' or 'model' entry, no 'denoise_fn.*' keys; "
                              f"top-level keys: {keys})")
    state = {k: v for k, v in source.items() if not k.startswith(IGNORED_PREFIXES)}
    if not any(k.startswith("denoise_fn.") for k in state) or not any(k.startswith("context_fn.") for k in state):
        raise CheckpointError(f"{where}: the state dict has no denoise_fn.* / context_fn.* weights")
    return state


def _strip(entries: Mapping[str, Any], prefix: str, where: str) -> dict[str, Tensor]:
    out = {k[len(prefix):]: v for k, v in entries.items() if k.startswith(prefix)}
    if not out:
        raise CheckpointError(f"{where}: no '{prefix}*' keys (x-param inference uses the EMA weights)")
    return out


def _shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"cannot infer the CDC architecture: key {key!r} is missing")
    return tuple(state[key].shape)


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    n = 0
    while any(k.startswith(f"{prefix}.{n}.") for k in state):
        n += 1
    return n


def _mults(channels: list[int], dim: int) -> tuple[int, ...]:
    return tuple(c // dim for c in channels)


def infer_config(state: Mapping[str, Tensor]) -> CDCConfig:
    """Rebuild the constructor arguments from tensor shapes, so any CDC checkpoint loads without naming its dims.

    Conventions the weights cannot show: the compressor's `dim` is the gcd of its channel counts (only the products
    dim·mult exist in the weights), and the last `context_dim_mults` entry, which the U-Net never uses, is set to
    the compressor's deepest multiple (as in the released configs).
    """
    variant = "eps" if "context_fn.enc.0.2.conv.weight" in state else "x"  # BigCompressor's VBR slot layout
    embd_type = "index" if "denoise_fn.time_mlp.0.weights" in state else "01"
    dim = _shape(state, f"denoise_fn.time_mlp.{3 if embd_type == 'index' else 2}.weight")[0]
    channels = _shape(state, "denoise_fn.final_conv.1.weight")[0]
    levels = _count(state, "denoise_fn.downs")
    dims = [channels] + [_shape(state, f"denoise_fn.downs.{i}.1.block1.block.0.weight")[0] for i in range(levels)]
    ctx = [_shape(state, f"denoise_fn.downs.{i}.0.block1.block.0.weight")[1] - dims[i] for i in range(levels)]
    n_ctx = next((i for i, c in enumerate(ctx) if c == 0), levels)

    resample = 2 if variant == "eps" else 1
    n_enc = _count(state, "context_fn.enc")
    enc = [_shape(state, f"context_fn.enc.{i}.0.block1.block.0.weight")[0] for i in range(n_enc)]
    n_hyper = _count(state, "context_fn.hyper_enc")
    hyper = [_shape(state, f"context_fn.hyper_enc.{i}.0.weight")[0] for i in range(n_hyper)]
    n_dec = _count(state, "context_fn.dec")
    dec_in = [_shape(state, f"context_fn.dec.{i}.0.block1.block.0.weight")[1] for i in range(n_dec)]
    out_channels = _shape(state, f"context_fn.dec.{n_dec - 1}.{resample}.conv.weight")[1]
    comp_dim = reduce(math.gcd, enc + hyper + dec_in)

    betas = state.get("train_betas")
    if betas is None:
        raise CheckpointError("cannot infer the CDC schedule: key 'train_betas' is missing")
    # Only a label: sampling reads the checkpoint's own `train_alphas_cumprod`, so take the closer of the two.
    b = betas.double().numpy()
    schedule = min(BETA_SCHEDULES, key=lambda name: float(np.abs(BETA_SCHEDULES[name](b.size) - b).max()))
    return CDCConfig(
        variant=variant, dim=dim, channels=channels, context_channels=ctx[0],
        dim_mults=_mults(dims[1:], dim),
        context_dim_mults=tuple(c // dim for c in ctx[1:n_ctx]) + (enc[-1] // dim,),
        embd_type=embd_type, comp_dim=comp_dim, comp_dim_mults=_mults(enc, comp_dim),
        reverse_dim_mults=_mults(dec_in, comp_dim) if variant == "x" else (),
        hyper_dims_mults=_mults(hyper, comp_dim), comp_out_channels=out_channels,
        num_timesteps=int(betas.numel()), beta_schedule=schedule,
    )


def config_beside(path: str | Path) -> CDCConfig | None:
    """A config JSON next to the checkpoint (`<file>.json` or `<stem>.json`), diffusers-style; None if absent."""
    path = Path(path)
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            try:
                return CDCConfig.from_dict(json.loads(candidate.read_text()))
            except (ValueError, KeyError, TypeError) as err:
                raise CheckpointError(f"{candidate}: not a valid CDC config: {err}") from None
    return None


def load_cdc(path: str | Path, config: CDCConfig | None = None, device: str | torch.device = "cpu") -> CDCModel:
    """Build the model (config given, else beside the file, else inferred from shapes), load strictly, eval mode."""
    state = load_state_dict_from_file(path)
    config = config or config_beside(path) or infer_config(state)
    model = CDCModel(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"CDC checkpoint {path}: weights do not fit the {config.variant}-param architecture "
                              f"{config.to_dict()}: {err}") from None
    return model.to(device).eval().requires_grad_(False)


def build_cdc(config: CDCConfig, seed: int = 0, device: str | torch.device = "cpu") -> CDCModel:
    """A model with random weights (seeded, without touching the global RNG), for speed work and tests."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CDCModel(config)
    return model.to(device).eval().requires_grad_(False)
