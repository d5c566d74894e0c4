"""Check our CDC implementation against tensors the official code produced (the fixtures' directory format).

A directory holds, per variant prefix P (e.g. `xparam`, `epsparam`): `P_config.json` (official constructor
arguments, steps, trace steps), `P_ckpt.pt` (an official-format checkpoint) and `P_expected.pt` (expected
tensors). Tolerances are those suggested by the fixtures' README: our operation order may differ from the
official one more than a thread-count change does, so exact equality is not required (though usually observed).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import infer_config, load_cdc, load_state_dict_from_file
from .model import CDCConfig, CDCModel
from .sampler import decode_image
from .schedules import sample_schedule


class VerifyError(RuntimeError):
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


COMPRESSOR = Tolerance(atol=1e-4, rtol=1e-4)
EXACT = Tolerance()
QUANTISED = EXACT  # ẑ, ŷ: bit for bit, no rounding flip allowed
X_DECODED = Tolerance(atol=1e-4)  # x-param images in [−1, 1] and the states between steps
TIME = Tolerance(atol=1e-7)


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


def verify_variant(directory: Path, prefix: str, device: str = "cpu") -> list[Check]:
    """All checks for one variant prefix of a verify directory, computed on `device` (TF32 off on CUDA)."""
    from .entropy import gaussian_likelihood  # imports compressai; only needed here

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
    exp = {k: v.to(device) if k in ("x", "init") else v for k, v in exp.items()}
    is_x = config.variant == "x"
    big = X_DECODED if is_x else Tolerance(rel_to_max=1e-4)

    with torch.inference_mode():
        out = model.compress(exp["x"])
        prior = model.context_fn.prior
        ours: dict[str, tuple[Tensor, Tolerance]] = {
            "latent": (out.latent, COMPRESSOR), "hyper_latent": (out.hyper_latent, COMPRESSOR),
            "q_hyper_latent": (out.q_hyper_latent, QUANTISED), "q_latent": (out.q_latent, QUANTISED),
            "latent_mean": (out.latent_mean, COMPRESSOR), "latent_scale_clamped": (out.latent_scale, COMPRESSOR),
            "hyper_likelihood": (prior.likelihood(out.q_hyper_latent), COMPRESSOR),
            "latent_likelihood": (gaussian_likelihood(out.q_latent, out.latent_mean, out.latent_scale), COMPRESSOR),
        }
        for i, feature in enumerate(out.context):
            ours[f"context_{i}"] = (feature, COMPRESSOR)
        h, w = exp["x"].shape[-2:]
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
            result = decode_image(model, out.context, exp["x"].shape, steps, init=exp["init"],
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

    for name, ref in exp.items():
        if name in ("x", "init"):
            continue  # inputs
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
