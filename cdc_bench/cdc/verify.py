"""Check our CDC implementation against tensors the official code produced (the fixtures' directory format).

A directory holds, per variant prefix P (e.g. `xparam`, `epsparam`): `P_config.json` (official constructor
arguments, steps, trace steps), `P_ckpt.pt` (an official-format checkpoint) and `P_expected.pt` (expected
tensors). Tolerances are those suggested by the fixtures' README: our operation order may differ from the
official one more than a thread-count change does, so exact equality is not required (though usually observed).

**Input layout.** A convolution rounds differently on a channels-last tensor than on a contiguous one, so the
input is fed in the memory format the reference was computed from: ``input.memory_format`` of the config
(``"contiguous"`` or ``"channels_last"``), else the strides of the stored ``x`` (torch.save keeps them), else
channels-last when ``input.conversion`` starts at ``torchvision.io.read_image`` (it returns an HWC-strided view and
every later elementwise op keeps that layout: the official fixtures' recipe). A fixture set made from a
channels-last input but stored contiguous and fed so misses by float error (~1e-6, reported in the issue).

**Quantised latents** are compared as integer symbols (``round(ŷ − μ)``, ``round(ẑ − median)``), exactly, with
every flip counted and located; the dequantised tensors are compared within float tolerance elsewhere. A flip
whose value before rounding lies within float error of .5 is a *warning* (two correct float computations may
round it either way), any other flip a failure.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import CdcBenchError
from .checkpoint import infer_config, load_cdc, load_state_dict_from_file
from .model import CDCConfig, CDCModel
from .sampler import decode_image
from .schedules import sample_schedule


class VerifyError(CdcBenchError, RuntimeError):
    """The directory is not in the fixtures' format; the message names the missing or bad file."""


@dataclass(frozen=True)
class Tolerance:
    atol: float = 0.0
    rtol: float = 0.0          # relative to each reference element (np.allclose style)
    rel_to_max: float = 0.0    # relative to max |reference| over the tensor (for eps outputs reaching ±600)

    def describe(self) -> str:
        parts = [f"atol {self.atol:g}"] if self.atol else []
        parts += [f"rtol {self.rtol:g}"] if self.rtol else []
        parts += [f"{self.rel_to_max:g}·max|ref|"] if self.rel_to_max else []
        return ", ".join(parts) or "exact"


@dataclass(frozen=True)
class Check:
    variant: str
    tensor: str
    max_abs_diff: float
    max_abs_ref: float
    tolerance: str
    ok: bool
    note: str = ""
    warning: bool = False  # within tolerance only up to rounding flips at .5 (ok stays True)


COMPRESSOR = Tolerance(atol=1e-4, rtol=1e-4)
EXACT = Tolerance()
X_DECODED = Tolerance(atol=1e-4)  # x-param images in [−1, 1] and the states between steps
TIME = Tolerance(atol=1e-7)
DEQUANTISED = Tolerance(atol=1e-4)  # ŷ = symbols + μ: μ's float error, flipped symbols excluded
HALF_TOLERANCE = 1e-4  # |frac(v) − .5| below this: a flip float error explains
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def compare(variant: str, name: str, ours: Tensor, ref: Tensor, tol: Tolerance) -> Check:
    """One comparison; shape or dtype-class mismatches fail with a note instead of raising."""
    ours, ref = ours.detach().cpu(), ref.detach().cpu()
    if ours.shape != ref.shape:
        return Check(variant, name, float("nan"), float("nan"), tol.describe(), False,
                     f"shape {tuple(ours.shape)} != expected {tuple(ref.shape)}")
    diff = (ours.double() - ref.double()).abs()
    ref_abs = ref.double().abs()
    max_ref = float(ref_abs.max()) if ref.numel() else 0.0
    bound = tol.atol + tol.rtol * ref_abs + tol.rel_to_max * max_ref
    bad = diff > bound
    note = f"{int(bad.sum())} element(s) off" if bool(bad.any()) else ""
    finite = bool(torch.isfinite(ours.double()).all())
    return Check(variant, name, float(diff.max()) if diff.numel() else 0.0, max_ref, tol.describe(),
                 finite and not bool(bad.any()), note if finite else "non-finite values")


def compare_symbols(variant: str, name: str, ours_value: Tensor, offset_ours: Tensor, ref_q: Tensor,
                    offset_ref: Tensor) -> Check:
    """Integer symbols ``round(v − offset)`` against the reference's ``round(q − offset)``, exactly."""
    pre = (ours_value.detach().cpu().double() - offset_ours.detach().cpu().double())
    ours = torch.round(pre)
    ref = torch.round(ref_q.detach().cpu().double() - offset_ref.detach().cpu().double())
    if ours.shape != ref.shape:
        return Check(variant, name, float("nan"), float("nan"), "exact", False,
                     f"shape {tuple(ours.shape)} != expected {tuple(ref.shape)}")
    flips = (ours != ref).nonzero().tolist()
    near_half = [(pos, float(pre[tuple(pos)])) for pos in flips
                 if abs(abs(float(pre[tuple(pos)]) % 1.0) - 0.5) < HALF_TOLERANCE]
    diff = float((ours - ref).abs().max()) if ours.numel() else 0.0
    if not flips:
        return Check(variant, name, diff, float(ref.abs().max()), "exact", True)
    where = "; ".join(f"{tuple(p)}: {float(ours[tuple(p)]):g} vs {float(ref[tuple(p)]):g} "
                      f"(before rounding {float(pre[tuple(p)]):.7f})" for p in flips[:3])
    more = f" (+{len(flips) - 3} more)" if len(flips) > 3 else ""
    if len(near_half) == len(flips):
        return Check(variant, name, diff, float(ref.abs().max()), "exact", True,
                     f"{len(flips)} rounding flip(s) at .5 within float error, not an implementation "
                     f"difference: {where}{more}", warning=True)
    return Check(variant, name, diff, float(ref.abs().max()), "exact", False,
                 f"{len(flips)} symbol flip(s), {len(flips) - len(near_half)} not at .5: {where}{more}")


def _dequantised(variant: str, name: str, ours: Tensor, ref: Tensor, ours_offset: Tensor, ref_offset: Tensor,
                 tol: Tolerance) -> Check:
    """ŷ within float tolerance where the symbols agree (flips are the symbol check's)."""
    same = torch.round(ours.cpu().double() - ours_offset.cpu().double()) == \
        torch.round(ref.cpu().double() - ref_offset.cpu().double())
    check = compare(variant, name, torch.where(same, ours.cpu(), ref.cpu()), ref, tol)
    return check if bool(same.all()) else Check(**{**check.__dict__, "note": (check.note + " (symbol flips "
                                                                             "excluded)").strip()})


def input_layout(config: dict, x: Tensor) -> str:
    """The memory format the reference input was computed in: the config's, else the stored tensor's strides."""
    layout = (config.get("input") or {}).get("memory_format")
    if layout is not None:
        if layout not in LAYOUTS:
            raise VerifyError(f"input.memory_format {layout!r} is not one of {', '.join(LAYOUTS)}")
        return layout
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    recipe = str((config.get("input") or {}).get("conversion", ""))
    return "channels_last" if channels_last or recipe.startswith("torchvision.io.read_image") else "contiguous"


def _files(directory: Path, prefix: str) -> tuple[dict, Path, dict[str, Tensor]]:
    config_path = directory / f"{prefix}_config.json"
    ckpt, expected = directory / f"{prefix}_ckpt.pt", directory / f"{prefix}_expected.pt"
    for path in (ckpt, expected):
        if not path.is_file():
            raise VerifyError(f"{path}: missing (a verify directory needs {prefix}_config.json, "
                              f"{prefix}_ckpt.pt and {prefix}_expected.pt)")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise VerifyError(f"{config_path}: not readable JSON: {err}") from None
    try:
        tensors = torch.load(expected, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise VerifyError(f"{expected}: cannot be loaded with torch.load(weights_only=True): {err}") from None
    if not isinstance(tensors, dict):
        raise VerifyError(f"{expected}: expected a dict of tensors")
    return config, ckpt, tensors


def computed_tensors(model: CDCModel, config: CDCConfig, raw_config: dict, x: Tensor,
                     init: Tensor) -> tuple[dict[str, tuple[Tensor, Tolerance]], Any]:
    """Every tensor cdc-verify checks, named as in the fixtures, with its tolerance (and the compressor output)."""
    from .entropy import gaussian_likelihood  # imports compressai; only needed here

    is_x = config.variant == "x"
    big = X_DECODED if is_x else Tolerance(rel_to_max=1e-4)

    with torch.inference_mode():
        out = model.compress(x)
        prior = model.context_fn.prior
        ours: dict[str, tuple[Tensor, Tolerance]] = {
            "latent": (out.latent, COMPRESSOR), "hyper_latent": (out.hyper_latent, COMPRESSOR),
            "latent_mean": (out.latent_mean, COMPRESSOR), "latent_scale_clamped": (out.latent_scale, COMPRESSOR),
            "hyper_likelihood": (prior.likelihood(out.q_hyper_latent), COMPRESSOR),
            "latent_likelihood": (gaussian_likelihood(out.q_latent, out.latent_mean, out.latent_scale), COMPRESSOR),
        }
        for i, feature in enumerate(out.context):
            ours[f"context_{i}"] = (feature, COMPRESSOR)
        h, w = x.shape[-2:]
        bits = (-torch.log2(ours["hyper_likelihood"][0]).flatten(1).sum(1)
                - torch.log2(ours["latent_likelihood"][0]).flatten(1).sum(1))
        bpp = bits / (h * w)
        ours["bpp"] = (bpp, Tolerance(rtol=1e-4))

        for steps in raw_config.get("steps", []):
            sched = sample_schedule(model.train_alphas_cumprod, steps, config.variant)
            ours[f"sched_steps{steps}_index"] = (sched.index, EXACT)
            ours[f"sched_steps{steps}_alphas_cumprod"] = (sched.alphas, EXACT)
            ours[f"sched_steps{steps}_alphas_cumprod_prev"] = (sched.alphas_prev, EXACT)
            calls: list[dict] = []
            result = decode_image(model, out.context, x.shape, steps, init=init,
                                  callback=calls.append)
            ours[f"out_steps{steps}"] = (result, big)
            ours[f"bpp_returned_steps{steps}"] = (bpp.mean() if is_x else bpp, Tolerance(rtol=1e-4))
            for k, call in enumerate(calls):
                batch = call["x"].shape[0]
                ours[f"steps{steps}_call{k}_time_in"] = (call["time_in"].expand(batch, 1), TIME)
                one_call = Tolerance(atol=1e-4) if (is_x or k == 0) else Tolerance(atol=1e-4, rel_to_max=1e-4)
                ours[f"steps{steps}_call{k}_net_out"] = (call["out"], one_call)
                if k:
                    ours[f"steps{steps}_call{k}_x_in"] = (call["x"], big)

    return ours, out


def verify_variant(directory: Path, prefix: str, device: str = "cpu") -> list[Check]:
    """All checks for one variant prefix of a verify directory, computed on `device` (TF32 off on CUDA)."""

    raw_config, ckpt, exp = _files(directory, prefix)
    try:
        config = CDCConfig.from_dict(raw_config)
    except (KeyError, ValueError, TypeError) as err:
        raise VerifyError(f"{directory / (prefix + '_config.json')}: not a CDC config: {err}") from None
    checks: list[Check] = []
    inferred = infer_config(load_state_dict_from_file(ckpt))
    checks.append(Check(prefix, "architecture inferred from shapes", 0.0, 0.0, "equal", inferred == config,
                        "" if inferred == config else f"inferred {inferred.to_dict()}"))
    model: CDCModel = load_cdc(ckpt, config=config, device=device)
    layout = input_layout(raw_config, exp["x"])
    fmt = LAYOUTS[layout]
    exp = {k: v.to(device).contiguous(memory_format=fmt) if k in ("x", "init") else v for k, v in exp.items()}
    checks.append(Check(prefix, f"input fed {layout}", 0.0, 0.0, "-", True))
    ours, out = computed_tensors(model, config, raw_config, exp["x"], exp["init"])
    with torch.inference_mode():
        medians = model.context_fn.prior.medians
        symbols = {"q_latent": (out.latent, out.latent_mean, exp.get("latent_mean")),
                   "q_hyper_latent": (out.hyper_latent, medians, medians)}

    for name, ref in exp.items():
        if name in ("x", "init"):
            continue  # inputs
        if name in symbols:
            value, offset, ref_offset = symbols[name]
            ref_offset = offset if ref_offset is None else ref_offset
            checks.append(compare_symbols(prefix, f"{name} symbols", value, offset, ref, ref_offset))
            dequantised = out.q_latent if name == "q_latent" else out.q_hyper_latent
            checks.append(_dequantised(prefix, name, dequantised, ref, offset, ref_offset, DEQUANTISED))
            continue
        if name in ours:
            checks.append(compare(prefix, name, ours[name][0], ref, ours[name][1]))
        elif not re.match(r"steps\d+_call\d+_", name):
            checks.append(Check(prefix, name, float("nan"), float("nan"), "-", False, "not computed by cdc-verify"))
    return checks


def verify_dir(directory: str | Path, device: str = "cpu") -> list[Check]:
    """Checks for every `<prefix>_config.json` in `directory`; VerifyError when there is none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise VerifyError(f"{directory}: not a directory (expected e.g. ../shared/reference/cdc/fixtures)")
    prefixes = sorted(p.name[: -len("_config.json")] for p in directory.glob("*_config.json"))
    if not prefixes:
        raise VerifyError(f"{directory}: no <variant>_config.json files (expected xparam_config.json, ...)")
    if str(device).startswith("cuda"):
        # TF32 convolutions/matmuls round to 10-bit mantissas: not what the official fp32 run computed
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return [check for prefix in prefixes for check in verify_variant(directory, prefix, device)]
