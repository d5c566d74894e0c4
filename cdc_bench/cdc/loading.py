"""Which CDC weights a codec uses, loaded once per process: released files, a local checkpoint, or random weights.

A stream names its weights by model id (``released:x:0.0032``, ``file:<sha256 prefix>``, ``random:x:<seed>``).
:func:`for_stream` checks such an id against what the decoder may use *before* loading anything, and never
downloads: decoding untrusted bytes must not start a network transfer. :func:`for_rate` (the encoder) may fetch
a released file.

A loaded model is cached per (model id, device, :class:`Numerics`): the fast paths change the module (two-pass
norm flag, channels-last weights, compiled denoiser), so a model prepared for one must not serve the other.
"""
from __future__ import annotations

import copy
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import BitstreamError, CodecError, CodecUnavailable
from . import releases
from .entropy import LatentCoder
from .layers import set_fast_norm

CACHE_SIZE = 2  # models kept per process: each released model is ~216 MB in fp32
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Numerics:
    """How the denoiser runs. Every field but the defaults trades bit-exactness for speed (the entropy model
    always stays fp32 on the CPU, so bitstreams and rates never change)."""

    fast_norm: bool = False      # two-pass channel variance instead of torch.var
    dtype: str = "fp32"          # autocast of the denoiser: fp32 | bf16 | fp16
    channels_last: bool = False  # NHWC weights and activations in the denoiser
    compile: bool = False        # torch.compile of the denoiser, kept with the cached model


@dataclass
class LoadedModel:
    """A model ready to code with: the network, its entropy coder and the size constraints probed from it."""

    model: Any
    coder: LatentCoder
    model_id: str
    multiple: int  # input sides must be multiples of this (64 for every CDC config)
    z_channels: int
    denoise: Any = None  # the denoiser to call: model.denoise_fn, or its compiled version

    @property
    def weights_kind(self) -> str:
        return "random" if self.model_id.startswith("random:") else "trained"


_models: "OrderedDict[tuple, LoadedModel]" = OrderedDict()
_lock = threading.Lock()
_digests: dict[tuple[str, int, int], str] = {}


def file_model_id(path: Path) -> str:
    """A local checkpoint is identified by its content (sha256 prefix), so a stream cannot meet other weights."""
    from ..download import sha256_of

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_of(path)[:16]
    return f"file:{_digests[key]}"


def _prepare(model: Any, model_id: str, device: str, numerics: Numerics) -> LoadedModel:
    model = model.to(device).eval()
    comp = model.context_fn
    with torch.inference_mode():
        # Probe the smallest legal input once to learn the downsampling factors (64 for all known configs).
        y = comp.analysis(torch.zeros(1, 3, 64, 64, device=device))
        z = comp.hyper_analysis(y)
    if 64 % z.shape[-1] or z.shape[-1] != z.shape[-2]:
        raise CodecError(f"CDC model {model_id}: unexpected hyper-latent shape {tuple(z.shape)} for a 64x64 input")
    # Entropy tables are built on the CPU in fp32 (the coder is CPU code; fp16 likelihoods underflow).
    coder = LatentCoder(copy.deepcopy(comp.prior).cpu().float())
    set_fast_norm(model.denoise_fn, numerics.fast_norm)  # the compressor stays exact: latents never change
    if numerics.channels_last:
        model.denoise_fn.to(memory_format=torch.channels_last)
    denoise = torch.compile(model.denoise_fn) if numerics.compile else model.denoise_fn
    return LoadedModel(model, coder, model_id, multiple=64 // z.shape[-1], z_channels=z.shape[1], denoise=denoise)


def _cached(model_id: str, device: str, numerics: Numerics, build: Callable[[], Any]) -> LoadedModel:
    key = (model_id, device, numerics)
    with _lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    loaded = _prepare(build(), model_id, device, numerics)
    with _lock:
        _models[key] = loaded
        while len(_models) > CACHE_SIZE:
            _models.popitem(last=False)
    return loaded


def checkpoint_label(checkpoint: str) -> float:
    """The lambda in an official checkpoint name (``-b<lambda>-``), else 0: a local file is one rate point."""
    found = re.search(r"-b(\d+(?:\.\d+)?)-", Path(checkpoint).name)
    return float(found.group(1)) if found else 0.0


def _checked(model: Any, variant: str, codec: str, path: Path | None = None) -> Any:
    if model.config.variant != variant:
        other = "cdc" if model.config.variant == "x" else "cdc-eps"
        raise CodecError(f"{path or 'checkpoint'} is a {model.config.variant}-param CDC model; "
                         f"use codec {other} for it, not {codec}")
    return model


def _release(codec: str, release: releases.Release, device: str, numerics: Numerics,
             allow_download: bool) -> LoadedModel:
    from ..weights import WeightsMissing
    from .checkpoint import load_cdc

    def build() -> Any:
        try:
            path = releases.release_file(release, allow_download=allow_download)
        except WeightsMissing as err:
            if allow_download:
                raise
            raise CodecUnavailable(
                f"{codec}: this stream was encoded with released weights {release.weight_name}, which are not "
                f"on this machine (decoding never downloads)",
                f"fetch them first with `cdc-bench weights --only {release.weight_name}` ({err})") from None
        return _checked(load_cdc(path), release.variant, codec)

    return _cached(release.model_id, device, numerics, build)


def _file(codec: str, variant: str, checkpoint: str, device: str, numerics: Numerics) -> LoadedModel:
    from .checkpoint import load_cdc

    path = Path(checkpoint).expanduser()
    return _cached(file_model_id(path), device, numerics, lambda: _checked(load_cdc(path), variant, codec, path))


def _random(variant: str, seed: int, device: str, numerics: Numerics) -> LoadedModel:
    from .checkpoint import build_cdc
    from .model import RELEASED_CONFIGS

    return _cached(f"random:{variant}:{seed}", device, numerics,
                   lambda: build_cdc(RELEASED_CONFIGS[variant], seed=seed))


def for_rate(codec: str, variant: str, rate: Any, options: dict[str, Any], device: str,
             numerics: Numerics) -> LoadedModel:
    """The encoder's model for one rate point (a released lambda, unless checkpoint= or weights=random)."""
    if options["checkpoint"]:
        return _file(codec, variant, options["checkpoint"], device, numerics)
    if options["weights"] == "random":
        return _random(variant, 0, device, numerics)
    return _release(codec, releases.find_release(variant, float(rate)), device, numerics, allow_download=True)


def check_model_id(codec: str, variant: str, model_id: str, options: dict[str, Any]) -> None:
    """Refuse a stream's model id before anything is loaded: unknown ids, foreign checkpoints, absurd seeds."""
    release = releases.release_from_model_id(model_id)
    if release is not None:
        if release.variant != variant:
            raise BitstreamError(f"CDC stream names {release.variant}-param weights; {codec} is {variant}-param")
        return
    random_id = re.fullmatch(rf"random:{variant}:(\d{{1,19}})", model_id)
    if random_id is not None:
        if int(random_id.group(1)) > MAX_SEED:
            raise BitstreamError(f"CDC stream names random weights with seed {random_id.group(1)}, out of range")
        if options["weights"] != "random":  # a stream must not make a decoder build models it was not asked for
            raise BitstreamError(f"this CDC stream was encoded with random weights ({model_id}); decode it with "
                                 f"-o {codec}.weights=random")
        return
    if re.fullmatch(r"file:[0-9a-f]{16}", model_id):
        if not options["checkpoint"]:
            raise BitstreamError(f"this CDC stream was encoded with a local checkpoint ({model_id}); decode "
                                 f"it with -o {codec}.checkpoint=PATH naming the same file")
        path = Path(options["checkpoint"]).expanduser()
        if file_model_id(path) != model_id:
            raise BitstreamError(f"this CDC stream was encoded with checkpoint {model_id}, but the decoder's "
                                 f"checkpoint {options['checkpoint']} is {file_model_id(path)}")
        return
    raise BitstreamError(f"CDC stream names unknown weights {model_id!r} for codec {codec}")


def for_stream(codec: str, variant: str, model_id: str, options: dict[str, Any], device: str,
               numerics: Numerics) -> LoadedModel:
    """The decoder's model for a stream's model id; checked first, never downloaded."""
    check_model_id(codec, variant, model_id, options)
    release = releases.release_from_model_id(model_id)
    if release is not None:
        return _release(codec, release, device, numerics, allow_download=False)
    if model_id.startswith("random:"):
        return _random(variant, int(model_id.rsplit(":", 1)[1]), device, numerics)
    return _file(codec, variant, options["checkpoint"], device, numerics)
