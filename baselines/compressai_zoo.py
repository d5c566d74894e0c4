"""The CompressAI model zoo as codecs: ``compressai:<model>``, quality levels as rate points.

Everything that defines the numbers is CompressAI's own: the architectures and configurations of
``compressai.zoo``, its weight URLs (``model_urls``, whose file names carry the first 8 hex digits of the file's
sha256, checked on download as ``torch.hub`` does), its state-dict key conversion (``load_pretrained``) and its
``compress``/``decompress`` with the ``ans`` range coder. The evaluation protocol copies
``compressai.utils.eval_model``: the image is padded to a multiple of 64 with **zeros, centred**
(``compressai.ops.compute_padding`` + ``F.pad(mode="constant", value=0)``), pretrained models are used as loaded
(their CDF tables come from the checkpoint, no ``update()``), the output is unpadded, clamped and rounded to 8 bits,
and VBR models run at ``stage=2, s=0, inputscale=1/step`` after ``update(force=True, scale=1/step)``.

The bitstream is CompressAI's strings behind a small header (the container of :mod:`baselines._container`), so the
decoder needs the bytes alone: model, metric, weights kind, quality (or the VBR input scale 1/step, as the float32
the encoder used, so the decoder's entropy tables are bit-identical), original H x W, latent shape,
and each string with its length. The decoder checks each field against its own configuration (model, metric,
weights, the model's qualities, ``max_pixels``, the latent shape the size implies, the model's string count)
before it builds a tensor or runs CompressAI's range decoder. ``bmshj2018-factorized-relu`` is left out: CompressAI
1.2.8's zoo entry builds and loads the plain ``bmshj2018-factorized`` model (it has no weights of its own), so it
would only duplicate that codec.

Determinism: the decoder must recompute exactly the encoder's entropy parameters. CompressAI guarantees this for
the same machine, library versions and thread count; across machines it does not (floating point), which is why a
result row records the environment and bitstreams are decoded where they were made.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cdc_bench.codecs.base import (BitstreamError, CodecConfigError, CodecError, CodecUnavailable, Encoded, Option,
                             Rate)
from cdc_bench.weights import WeightFile, register_weight

from ._container import (MAX_PIXELS_OPTION, WEIGHTS_OPTION, LearnedCodec, Reader, fetch_hub_weight, hub_path,
                         pack_strings, rans_guard, read_magic, seeded, unpack_strings,
                         weight_path, write_varint)

# Fixed one-byte codes for the header; never renumber (old bitstreams would decode with the wrong model).
MODEL_CODES: dict[str, int] = {
    "bmshj2018-factorized": 1,
    "bmshj2018-hyperprior": 2,
    "mbt2018-mean": 3,
    "mbt2018": 4,
    "cheng2020-anchor": 5,
    "cheng2020-attn": 6,
    "bmshj2018-hyperprior-vbr": 7,
    "mbt2018-mean-vbr": 8,
    "mbt2018-vbr": 9,
}
METRICS = ("mse", "ms-ssim")
MAGIC = b"CZ"
#: 2: a VBR stream carries the float32 input scale 1/step (version 1 carried the step, from which the decoder's
#: float32 1/step differed by one ulp from the encoder's at steps 7.1715 and 1.9305)
FORMAT_VERSION = 2
#: CompressAI's eval pads to allow 6 stride-2 layers.
PAD_MULTIPLE = 64
#: ``compressai.utils.eval_model``'s default quantization step sizes for VBR models (low rate first).
VBR_STEPS = (10.0, 7.1715, 5.1832, 3.7211, 2.6833, 1.9305, 1.3897, 1.0)
#: VBR models whose zoo loader enables the variable-rate entropy bottleneck (compressai.zoo.image_vbr).
VR_BOTTLENECK = ("bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr")
#: Valid VBR quantization steps (eval_model's defaults span 10..1).
VBR_RANGE = (0.1, 100.0)
#: Peak resident bytes of a CPU decode per pixel, and of the loaded network, per model: 1.5 x the figures measured
#: at the model's highest quality (its widest N, M; lower qualities are narrower) in results/decode_memory.json
#: (benchmarks/decode_memory.py). A header whose decode would not fit in the memory available is refused unread.
DECODE_MEMORY: dict[str, tuple[int, int]] = {
    "bmshj2018-factorized": (1200, 89 << 20),
    "bmshj2018-hyperprior": (1280, 122 << 20),
    "mbt2018-mean": (1230, 158 << 20),
    "mbt2018": (1120, 257 << 20),
    "cheng2020-anchor": (1250, 218 << 20),
    "cheng2020-attn": (1160, 288 << 20),
    "bmshj2018-hyperprior-vbr": (1710, 125 << 20),
    "mbt2018-mean-vbr": (1340, 164 << 20),
    "mbt2018-vbr": (1090, 260 << 20),
}


# -- weights ---------------------------------------------------------------------------------------------------
def weight_name(model: str, metric: str, quality: int | None) -> str:
    return f"compressai/{model}-{metric}" + (f"-{quality}" if quality is not None else "")


def _register_weights() -> None:
    from compressai.zoo import image, image_vbr

    for model, by_metric in image.model_urls.items():
        for metric, by_quality in by_metric.items():
            for quality, url in by_quality.items():
                _register_one(model, metric, quality, url)
    for model, by_metric in image_vbr.model_urls.items():
        for metric, url in by_metric.items():
            _register_one(model, metric, None, url)


def _register_one(model: str, metric: str, quality: int | None, url: str) -> None:
    filename = url.rsplit("/", 1)[-1]
    prefix = filename.split(".")[0].rsplit("-", 1)[-1]  # e.g. ...-1-446d5c7f.pth.tar -> 446d5c7f
    register_weight(WeightFile(
        name=weight_name(model, metric, quality), url=url, path=hub_path(filename),
        sha256=prefix, used_by=[f"compressai:{model}"], fetch=fetch_hub_weight,
        note="CompressAI publishes only the first 8 hex digits of the sha256 (in the file name)"))


# -- the codec -------------------------------------------------------------------------------------------------
def padded_input(image: np.ndarray, device: str = "cpu"):
    """The network input of ``compressai.utils.eval_model``: [0, 1] floats, zero-padded (centred) to 64."""
    import torch
    import torch.nn.functional as F
    from compressai.ops import compute_padding

    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255).to(device)
    pad, _ = compute_padding(h, w, min_div=PAD_MULTIPLE)
    return F.pad(x, pad, mode="constant", value=0)


class CompressAIZooCodec(LearnedCodec):
    """One CompressAI zoo architecture; subclasses (built by :class:`CompressAIFamily`) set ``model``."""

    model: str = ""
    vbr: bool = False
    smoke_options = {"weights": "random"}
    option_specs = {
        "metric": Option("mse", "training distortion of the weights", choices=METRICS),
        "weights": WEIGHTS_OPTION,
        "max_pixels": MAX_PIXELS_OPTION,
    }

    def check_options(self) -> None:
        if self.vbr and self.options["metric"] != "mse":
            raise CodecConfigError(f"{self.name} has weights only for metric=mse (CompressAI 1.2.8 ships no "
                                   "ms-ssim VBR)")

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        if self.options["weights"] != "pretrained":
            return []
        if self.vbr:
            return [weight_name(self.model, self.options["metric"], None)]
        return [weight_name(self.model, self.options["metric"], self.validate_rate(q)) for q in rate_points]

    def _model_for(self, quality: int | None, decoding: bool = False):
        metric, weights = self.options["metric"], self.options["weights"]
        return self.cached_model((metric, quality, weights), lambda: self._build(metric, quality, weights, decoding))

    def _build(self, metric: str, quality: int | None, weights: str, decoding: bool):
        from compressai.zoo import image_models

        if weights == "random":
            extra = {"vr_entbttlnck": True} if self.model in VR_BOTTLENECK else {}
            net = seeded(lambda: image_models[self.model](quality=quality or 0, metric=metric, pretrained=False,
                                                          **extra))
        else:
            net = load_zoo_checkpoint(self.model, weight_path(weight_name(self.model, metric, quality), decoding))
        if self.vbr:
            # As compressai.utils.eval_model sets them for VBR evaluation.
            net.no_quantoffset = False
            if self.model == "mbt2018-vbr":
                net.scl2ctx = True
        return net

    def _encode(self, image: np.ndarray, rate: Any) -> Encoded:
        import torch

        h, w = image.shape[:2]
        self.check_size(h, w, CodecError)
        quality, step = (None, rate) if self.vbr else (rate, None)
        net = self._model_for(quality)
        x = padded_input(image, self.device)
        with torch.no_grad(), _ans():
            if self.vbr:
                scale = _vbr_scale(step)
                _vbr_update(net, self.model, scale)
                out = net.compress(x, stage=2, s=0, inputscale=scale)
                likelihoods = net(x, stage=2, s=0, inputscale=scale)["likelihoods"]
            else:
                out = net.compress(x)
                likelihoods = net(x)["likelihoods"]
        # CompressAI's --entropy-estimation: the bits the likelihoods predict, beside the real count.
        estimated = float(sum(-torch.log2(lk).sum() for lk in likelihoods.values()))
        metric, weights = self.options["metric"], self.options["weights"]
        header = bytearray(MAGIC)
        header += bytes([FORMAT_VERSION, MODEL_CODES[self.model],
                         (metric == "ms-ssim") | ((weights == "random") << 1)])
        header += struct.pack("<f", float(_vbr_scale(step))) if self.vbr else bytes([quality])
        header += write_varint(h) + write_varint(w)
        shape = [int(s) for s in out["shape"]]
        header += write_varint(len(shape)) + b"".join(write_varint(s) for s in shape)
        return Encoded(bytes(header) + pack_strings(out["strings"]), estimated_bits=estimated)

    def _read_header(self, data: bytes):
        """Every header field, checked against this codec's configuration before anything is allocated."""
        from compressai.ops import compute_padding

        r = Reader(data, self.name)
        read_magic(r, MAGIC, FORMAT_VERSION, "compressai-zoo")
        code, flags = r.byte("model"), r.byte("flags")
        if code != MODEL_CODES[self.model]:
            other = next((k for k, v in MODEL_CODES.items() if v == code), f"unknown model code {code}")
            raise BitstreamError(f"bitstream was made by compressai:{other}, not {self.name}")
        if flags & ~0b11:
            raise BitstreamError(f"{self.name}: bitstream is corrupt (unknown flags {flags:#04x})")
        self.check_flag("metric", "ms-ssim" if flags & 1 else "mse")
        self.check_flag("weights", "random" if flags & 2 else "pretrained")
        if self.vbr:
            quality, scale = None, struct.unpack("<f", r.take(4, "input scale"))[0]
            self.validate_rate(1 / scale if math.isfinite(scale) and scale > 0 else math.nan, BitstreamError)
        else:
            quality, scale = self.validate_rate(r.byte("quality"), BitstreamError), None
        h, w = r.varint("height", 1), r.varint("width", 1)
        self.check_size(h, w)
        pad, unpad = compute_padding(h, w, min_div=PAD_MULTIPLE)
        padded = (h + pad[2] + pad[3], w + pad[0] + pad[1])
        factor, count = (16, 1) if self.model == "bmshj2018-factorized" else (64, 2)
        expected = [padded[0] // factor, padded[1] // factor]
        shape = [r.varint("latent shape") for _ in range(r.varint("latent rank", 0, 4))]
        if shape != expected:
            raise BitstreamError(f"{self.name}: bitstream is corrupt (latent shape {shape}; a {h}x{w} image has "
                                 f"{expected})")
        strings = unpack_strings(r, count)
        r.done()
        return quality, scale, (h, w), unpad, shape, strings

    def _decode(self, data: bytes) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        quality, scale, (h, w), unpad, shape, strings = self._read_header(data)
        net = self._model_for(quality, decoding=True)
        positions = (shape[0] * shape[1] * (16 if self.model != "bmshj2018-factorized" else 1))
        strings = rans_guard(strings, positions * (net.M + net.N), self.name)
        with torch.no_grad(), _ans():
            if self.vbr:
                scale = torch.tensor(scale)  # the encoder's float32 scale, bit for bit
                _vbr_update(net, self.model, scale)
                out = net.decompress(strings, torch.Size(shape), stage=2, s=0, inputscale=scale)
            else:
                out = net.decompress(strings, torch.Size(shape))
        x_hat = F.pad(out["x_hat"], unpad)
        if tuple(x_hat.shape[-2:]) != (h, w):
            raise BitstreamError(f"{self.name}: latent shape {shape} does not match the image size {h}x{w}")
        # eval_model's 8-bit conversion: clamp then round.
        rgb = (x_hat[0] * 255).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0)
        return rgb.cpu().numpy()


def load_zoo_checkpoint(model: str, path: str | Path):
    """Build a zoo architecture from a checkpoint file, exactly as ``compressai.zoo`` does, but with
    ``weights_only=True`` (a checkpoint must not run code)."""
    import torch
    from compressai.zoo import load_state_dict
    from compressai.zoo.image import model_architectures
    from compressai.zoo.image_vbr import model_architectures as vbr_architectures

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise CodecUnavailable(f"cannot read checkpoint {path} for compressai:{model} ({type(err).__name__}: {err})",
                               f"delete {path} and run again to re-download it") from None
    for key in ("network", "state_dict", "model_state_dict"):  # as eval_model's load_checkpoint
        if isinstance(state, dict) and key in state:
            state = state[key]
    state = load_state_dict(state)
    arch = {**model_architectures, **vbr_architectures}[model]
    try:
        if model in VR_BOTTLENECK:
            return arch.from_state_dict(state, vr_entbttlnck=True)
        return arch.from_state_dict(state)
    except (KeyError, RuntimeError) as err:
        raise CodecUnavailable(f"checkpoint {path} does not fit compressai:{model} ({err})",
                               f"delete {path} and run again to re-download it") from None


def _vbr_scale(step: float):
    import torch

    return torch.tensor(1.0 / step)  # eval_model: torch.tensor([1/q ...]) elements, float32


def _vbr_update(net, model: str, scale) -> None:
    # eval_model re-derives the CDFs of the variable-rate bottleneck for every step (not for mbt2018-vbr).
    if model in VR_BOTTLENECK:
        key = float(scale)
        if getattr(net, "_cdc_bench_scale", None) != key:
            net.update(force=True, scale=scale)
            net._cdc_bench_scale = key


class _ans:
    """Use CompressAI's 'ans' range coder for the duration (the only one it ships; set explicitly as eval does)."""

    def __enter__(self):
        import compressai

        self.previous = compressai.get_entropy_coder()
        compressai.set_entropy_coder("ans")

    def __exit__(self, *exc):
        import compressai

        compressai.set_entropy_coder(self.previous)


# -- the family --------------------------------------------------------------------------------------------------
class CompressAIFamily:
    """``compressai:<model>``: one codec class per zoo image model, built on first use."""

    def __init__(self) -> None:
        self._classes: dict[str, type[CompressAIZooCodec]] = {}

    def variants(self) -> list[str]:
        try:
            from compressai.zoo import image_models
        except ImportError:
            return list(MODEL_CODES)
        return [m for m in image_models if m in MODEL_CODES]

    def codec_for(self, variant: str) -> type[CompressAIZooCodec]:
        if variant not in MODEL_CODES:
            raise KeyError(f"unknown CompressAI zoo model {variant!r}; valid: {', '.join(MODEL_CODES)}")
        if variant not in self._classes:
            self._classes[variant] = _make_class(variant)
        return self._classes[variant]


def _make_class(model: str) -> type[CompressAIZooCodec]:
    vbr = model.endswith("-vbr")
    if vbr:
        rate = Rate.reals(*VBR_RANGE, points=VBR_STEPS, label="quantization step", log=True,
                          note="eval_model uses 10 = lowest rate .. 1 = highest")
    else:
        from compressai.zoo.image import cfgs

        qualities = tuple(sorted(cfgs[model]))
        rate = Rate.ints(qualities[0], qualities[-1], points=qualities)
    attrs = {
        "name": f"compressai:{model}",
        "model": model,
        "vbr": vbr,
        "description": f"CompressAI zoo {model} ({'variable rate, ' if vbr else ''}ans range coder)",
        "rate": rate,
        "decode_bytes_per_pixel": DECODE_MEMORY[model][0],
        "decode_model_bytes": DECODE_MEMORY[model][1],
        "details": (f"compressai.zoo '{model}' compress/decompress, entropy coder ans; input zero-padded (centred) "
                    f"to a multiple of {PAD_MULTIPLE} as compressai.utils.eval_model; weights from CompressAI's "
                    "model_urls via the torch.hub cache"),
        "__module__": __name__,
    }
    return type(f"CompressAI_{model.replace('-', '_')}", (CompressAIZooCodec,), attrs)


FAMILY = CompressAIFamily()

try:
    _register_weights()
except ImportError:  # compressai missing: the codecs report it through availability()
    pass

__all__ = ["FAMILY", "CompressAIFamily", "CompressAIZooCodec", "load_zoo_checkpoint", "padded_input", "weight_name"]
