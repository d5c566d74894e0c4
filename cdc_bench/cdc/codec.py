"""CDC as a codec: compressor + real entropy coding + DDIM decoding, wired into the :class:`Codec` interface.

``cdc`` is the x-parameterised release, ``cdc-eps`` the epsilon-parameterised one. Rate points are the released
rate-Lagrangians λ (larger λ = lower rate). The bitstream (bitstream.py) records which weights encoded it, so the
decoder loads the same ones from the bytes alone; the sampler settings (steps, gamma, eta, seed) are decoder
options.

Images of any size are padded at the bottom/right by **edge replication** to a multiple of 64 (the compressor
needs it, SPEC §4), and the decoded image is cropped back; bpp is over the original H·W.
"""
from __future__ import annotations

import copy
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from ..codec import Availability, BitstreamError, Codec, CodecError, check_image, pad_to_multiple
from . import releases
from .bitstream import Header, pack, unpack
from .entropy import LatentCoder, estimated_bits
from .layers import set_fast_norm
from .sampler import NOISE_LAYOUTS

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
WEIGHTS = ("released", "random")
_CACHE_SIZE = 2  # models kept per process: each released model is ~216 MB in fp32


@dataclass
class LoadedModel:
    """A model ready to code with: the network, its entropy coder and the size constraints probed from it."""

    model: Any
    coder: LatentCoder
    model_id: str
    multiple: int  # input sides must be multiples of this (64 for every CDC config)
    z_channels: int


_models: "OrderedDict[tuple[str, str], LoadedModel]" = OrderedDict()
_models_lock = threading.Lock()
_digests: dict[tuple[str, int, int], str] = {}


def _file_model_id(path: Path) -> str:
    """A local checkpoint is identified by its content (sha256 prefix), so a stream cannot meet other weights."""
    from ..download import sha256_of

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_of(path)[:16]
    return f"file:{_digests[key]}"


def _prepare(model: Any, model_id: str, device: str) -> LoadedModel:
    model = model.to(device).eval()
    comp = model.context_fn
    with torch.inference_mode():
        # Probe the smallest legal input once to learn the downsampling factors (64 for all known configs).
        y = comp.analysis(torch.zeros(1, 3, 64, 64, device=device))
        z = comp.hyper_analysis(y)
    if 64 % z.shape[-1] or z.shape[-1] != z.shape[-2]:
        raise CodecError(f"CDC model {model_id}: unexpected hyper-latent shape {tuple(z.shape)} for a 64x64 input")
    # Entropy tables are built on the CPU in fp32 (the coder is CPU code; fp16 likelihoods underflow, SPEC §8).
    coder = LatentCoder(copy.deepcopy(comp.prior).cpu().float())
    return LoadedModel(model, coder, model_id, multiple=64 // z.shape[-1], z_channels=z.shape[1])


def _cached(model_id: str, device: str, build) -> LoadedModel:
    key = (model_id, device)
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    loaded = _prepare(build(), model_id, device)
    with _models_lock:
        _models[key] = loaded
        while len(_models) > _CACHE_SIZE:
            _models.popitem(last=False)
    return loaded


class _CDCBase(Codec):
    variant: ClassVar[str] = "x"
    rate_label = "lambda (rate-Lagrangian b; larger = lower rate)"
    settings_help = {
        "steps": "DDIM sampling steps (1 ... T); decode time is linear in it",
        "gamma": "scale of the initial Gaussian state (the paper's gamma)",
        "eta": "DDIM eta: 0 is deterministic given the seed, >0 adds noise every step",
        "seed": "seed of the initial state (and of the per-step noise when eta > 0): same seed, same image",
        "checkpoint": "local checkpoint file (any lambda); replaces the released files, the rate point is then "
                      "only a label",
        "weights": "released | random (random weights of the released architecture, for speed work only)",
        "dtype": "fp32 | bf16 | fp16 (bf16/fp16: autocast of the denoiser on CUDA only; entropy model stays fp32)",
        "noise": "nchw | official: how the seed draws the initial state; official = randn_like of a channels-last "
                 "image as the official test script does after torch.manual_seed(seed) on the CPU",
        "fast_norm": "two-pass channel variance (0-15% faster per U-Net call, not bit-identical to the official "
                     "torch.var; a latent may round the other way)",
    }

    def __init__(self, options=None, device: str = "cpu"):
        super().__init__(options, device)
        self._last_bits: float | None = None
        self._last_info: dict[str, Any] = {}
        if self.options["checkpoint"]:
            # One local file is one rate point: label it with the file's lambda when its name carries one
            # (official names contain "-b<lambda>-"), else 0. Planners that read instance.rate_points use it.
            found = re.search(r"-b(\d+(?:\.\d+)?)-", Path(self.options["checkpoint"]).name)
            self.rate_points = (float(found.group(1)) if found else 0.0,)

    # -- configuration ---------------------------------------------------------------------------------------
    def validate_options(self) -> None:
        o = self.options
        if o["steps"] < 1:
            raise CodecError(f"{self.name}: steps must be >= 1, got {o['steps']}")
        if o["gamma"] < 0 or o["eta"] < 0:
            raise CodecError(f"{self.name}: gamma and eta must be >= 0, got gamma={o['gamma']} eta={o['eta']}")
        if o["weights"] not in WEIGHTS:
            raise CodecError(f"{self.name}: weights must be one of {', '.join(WEIGHTS)}, got {o['weights']!r}")
        if o["noise"] not in NOISE_LAYOUTS:
            raise CodecError(f"{self.name}: noise must be one of {', '.join(NOISE_LAYOUTS)}, got {o['noise']!r}")
        if o["dtype"] not in DTYPES:
            raise CodecError(f"{self.name}: dtype must be one of {', '.join(DTYPES)}, got {o['dtype']!r}")
        if o["dtype"] != "fp32" and not str(self.device).startswith("cuda"):
            raise CodecError(f"{self.name}: dtype={o['dtype']} needs a CUDA device (got {self.device}); "
                             f"use dtype=fp32 on the CPU")
        if o["checkpoint"]:
            path = Path(o["checkpoint"]).expanduser()
            if not path.is_file():
                raise CodecError(f"{self.name}: checkpoint file {path} does not exist; give the path of a CDC "
                                 f"checkpoint (.pt) or leave checkpoint empty to use the released ones")
            if o["weights"] != "released":
                raise CodecError(f"{self.name}: give either checkpoint=PATH or weights=random, not both")

    @classmethod
    def availability(cls) -> Availability:
        try:
            from . import checkpoint, sampler  # noqa: F401
        except ImportError as err:
            return Availability(False, f"CDC model code is not importable: {err}",
                                "reinstall cdc-bench (pip install -e .)")
        return Availability(True)

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        if self.options["checkpoint"] or self.options["weights"] == "random":
            return []
        return [releases.find_release(self.variant, r).weight_name for r in rate_points]

    # -- models ----------------------------------------------------------------------------------------------
    def _load_for_rate(self, rate: Any) -> LoadedModel:
        if self.options["checkpoint"]:
            return self._load_file()
        if self.options["weights"] == "random":
            return self._load_random(0)
        try:
            release = releases.find_release(self.variant, float(rate))
        except (TypeError, ValueError):
            raise CodecError(f"{self.name}: rate point {rate!r} is not a lambda; released: "
                             f"{', '.join(f'{b:g}' for b in releases.lambdas(self.variant))}") from None
        return self._load_release(release)

    def _load_for_id(self, model_id: str) -> LoadedModel:
        release = releases.release_from_model_id(model_id)
        if release is not None:
            return self._load_release(release)
        if model_id.startswith(f"random:{self.variant}:"):
            return self._load_random(int(model_id.rsplit(":", 1)[1]))
        if model_id.startswith("file:"):
            if not self.options["checkpoint"]:
                raise BitstreamError(f"this CDC stream was encoded with a local checkpoint ({model_id}); decode "
                                     f"it with -o checkpoint=PATH naming the same file")
            loaded = self._load_file()
            if loaded.model_id != model_id:
                raise BitstreamError(f"this CDC stream was encoded with checkpoint {model_id}, but the decoder's "
                                     f"checkpoint {self.options['checkpoint']} is {loaded.model_id}")
            return loaded
        raise BitstreamError(f"CDC stream names unknown weights {model_id!r} for codec {self.name}")

    def _load_release(self, release: releases.Release) -> LoadedModel:
        from .checkpoint import load_cdc

        return _cached(release.model_id, self.device, lambda: self._checked(load_cdc(releases.release_file(release))))

    def _load_file(self) -> LoadedModel:
        from .checkpoint import load_cdc

        path = Path(self.options["checkpoint"]).expanduser()
        return _cached(_file_model_id(path), self.device, lambda: self._checked(load_cdc(path), path))

    def _load_random(self, seed: int) -> LoadedModel:
        from .checkpoint import build_cdc
        from .model import RELEASED_CONFIGS

        return _cached(f"random:{self.variant}:{seed}", self.device,
                       lambda: build_cdc(RELEASED_CONFIGS[self.variant], seed=seed))

    def _checked(self, model: Any, path: Path | None = None) -> Any:
        if model.config.variant != self.variant:
            other = "cdc" if model.config.variant == "x" else "cdc-eps"
            raise CodecError(f"{path or 'checkpoint'} is a {model.config.variant}-param CDC model; "
                             f"use codec {other} for it, not {self.name}")
        return model

    # -- coding ----------------------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: Any) -> bytes:
        image = check_image(image)
        loaded = self._load_for_rate(rate)
        set_fast_norm(loaded.model, self.options["fast_norm"])
        height, width = image.shape[:2]
        padded = pad_to_multiple(image, loaded.multiple)  # edge replication, bottom and right
        x = self._to_tensor(padded)
        comp = loaded.model.context_fn
        with torch.inference_mode():
            y = comp.analysis(x).float()
            z = comp.hyper_analysis(y).float().cpu()
            z_strings, z_hat = loaded.coder.encode_hyper(z)
            mean, scale = (t.float().cpu() for t in comp.hyper_synthesis(z_hat.to(self.device)))
            y_strings, y_hat = loaded.coder.encode_latent(y.cpu(), mean, scale)
            self._last_bits = float(estimated_bits(loaded.coder.hyper.prior, z_hat, y_hat, mean, scale)[0])
        header = Header(self.variant, loaded.model_id, height, width, padded.shape[0], padded.shape[1],
                        int(loaded.model.config.num_timesteps), scale_crc=loaded.coder.scale_indexes_crc(scale))
        return pack(header, z_strings[0], y_strings[0])

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_batch([data])[0]

    def decode_batch(self, streams: Sequence[bytes]) -> list[np.ndarray]:
        """Decode several streams of the same model and size in one sampler run (one network call per step).

        Each image's initial state comes from its own generator seeded with ``seed``, so with eta = 0 a batch
        gives the same images as decoding one at a time (up to float rounding of batched convolutions).
        """
        parsed = [unpack(s) for s in streams]
        first = parsed[0][0]
        for header, _, _ in parsed:
            if header.variant != self.variant:
                raise BitstreamError(f"this is a {header.variant}-param CDC stream; decode it with "
                                     f"{'cdc' if header.variant == 'x' else 'cdc-eps'}, not {self.name}")
            if (header.model_id, header.padded_height, header.padded_width) != \
                    (first.model_id, first.padded_height, first.padded_width):
                raise CodecError("decode_batch needs streams of one model and one padded size; "
                                 "decode the others separately")
        loaded = self._load_for_id(first.model_id)
        set_fast_norm(loaded.model, self.options["fast_norm"])
        timesteps = int(loaded.model.config.num_timesteps)
        if first.num_timesteps != timesteps:
            raise BitstreamError(f"stream was encoded by a model with T={first.num_timesteps}, "
                                 f"decoder model has T={timesteps}")
        steps = self.options["steps"]
        if steps > timesteps:
            raise CodecError(f"{self.name}: steps={steps} exceeds the model's T={timesteps}")
        ph, pw = first.padded_height, first.padded_width
        if ph % loaded.multiple or pw % loaded.multiple:
            raise BitstreamError(f"padded size {ph}x{pw} is not a multiple of {loaded.multiple}")
        factor = loaded.multiple
        comp = loaded.model.context_fn
        with torch.inference_mode():
            z_hat = loaded.coder.decode_hyper([z for _, z, _ in parsed],
                                              (len(parsed), loaded.z_channels, ph // factor, pw // factor))
            mean, scale = (t.float().cpu() for t in comp.hyper_synthesis(z_hat.to(self.device)))
            for i, (header, _, _) in enumerate(parsed):
                if loaded.coder.scale_indexes_crc(scale[i:i + 1]) != header.scale_crc:
                    raise BitstreamError(
                        "the decoder's entropy model disagrees with the encoder's (scale-index CRC mismatch): the "
                        "hyper-decoder rounded differently on this device/dtype/library version. Decode on the "
                        "kind of device that encoded it, in fp32")
            y_hat = loaded.coder.decode_latent([y for _, _, y in parsed], mean, scale)
            context = comp.context(y_hat.to(self.device))  # once per image, reused by every step
            x0 = self._sample(loaded.model, context, (len(parsed), 3, ph, pw))
        self._last_info = {"cdc_steps": steps, "cdc_model_id": first.model_id,
                           "cdc_weights": "random" if first.model_id.startswith("random:") else "trained"}
        images = self._to_uint8(x0)
        return [img[:h.height, :h.width] for img, (h, _, _) in zip(images, parsed)]

    def _sample(self, model: Any, context: list[torch.Tensor], shape: tuple[int, int, int, int]) -> torch.Tensor:
        from .sampler import decode_image, seeded_initial_state

        o = self.options
        init = seeded_initial_state(shape, o["gamma"], o["seed"], o["noise"], self.device)
        noise_gen = torch.Generator(device=self.device).manual_seed(o["seed"] + 1)
        dtype = DTYPES[o["dtype"]]
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            out = decode_image(model, context, shape, steps=o["steps"], gamma=o["gamma"], eta=o["eta"],
                               generator=noise_gen, init=init)
        return out.float()

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        # The official order: uint8 -> float -> /255 -> *2-1 (SPEC §6 item 5).
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        return (x / 255.0 * 2.0 - 1.0).to(self.device)

    @staticmethod
    def _to_uint8(x0: torch.Tensor) -> list[np.ndarray]:
        # The official post-processing: clamp(-1,1)/2+0.5, then torchvision.save_image's *255 +0.5, clamp, uint8.
        x = (x0.clamp(-1, 1) / 2 + 0.5).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
        return [img.permute(1, 2, 0).cpu().numpy() for img in x]

    def estimated_bits(self) -> float | None:
        """Likelihood bits of the last encode (over the padded image: bits, not bpp, so no size mix-up)."""
        return self._last_bits

    def extra_metrics(self) -> dict[str, Any]:
        return dict(self._last_info)


class CDCXParam(_CDCBase):
    name = "cdc"
    variant = "x"
    description = "CDC (Yang & Mandt 2023), x-parameterisation, released weights, real rANS coding"
    rate_points = releases.lambdas("x")
    settings = {"steps": 65, "gamma": 0.8, "eta": 0.0, "seed": 0, "checkpoint": "", "weights": "released",
                "dtype": "fp32", "noise": "nchw", "fast_norm": False}
    details = ("x-param U-Net (T=8193, cosine), ResnetCompressor with hyperprior; latents coded with compressai's "
               "rANS (factorised prior for z, Gaussian for y); DDIM decoding from gamma*N(0,1); images padded by "
               "edge replication to a multiple of 64")


class CDCEpsParam(_CDCBase):
    name = "cdc-eps"
    variant = "eps"
    description = "CDC (Yang & Mandt 2023), epsilon-parameterisation, released weights, real rANS coding"
    rate_points = releases.lambdas("eps")
    settings = {"steps": 200, "gamma": 0.8, "eta": 0.0, "seed": 0, "checkpoint": "", "weights": "released",
                "dtype": "fp32", "noise": "nchw", "fast_norm": False}
    details = ("eps-param U-Net (T=20000, linear), BigCompressor with hyperprior; latents coded with compressai's "
               "rANS (factorised prior for z, Gaussian for y); DDIM decoding (no clipping) from gamma*N(0,1); "
               "images padded by edge replication to a multiple of 64")
