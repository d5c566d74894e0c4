"""The CompressAI model zoo as codecs: ``compressai:<model>``, quality levels as rate points.

Everything that defines the numbers is CompressAI's own: the architectures and configurations of
``compressai.zoo``, its weight URLs (``model_urls``, whose file names carry the first 8 hex digits of the file's
sha256, checked on download as ``torch.hub`` does), its state-dict key conversion (``load_pretrained``) and its
``compress``/``decompress`` with the ``ans`` range coder. The evaluation protocol copies
``compressai.utils.eval_model``: the image is padded to a multiple of 64 with **zeros, centred**
(``compressai.ops.compute_padding`` + ``F.pad(mode="constant", value=0)``), pretrained models are used as loaded
(their CDF tables come from the checkpoint, no ``update()``), the output is unpadded, clamped and rounded to 8 bits,
and VBR models run at ``stage=2, s=0, inputscale=1/step`` after ``update(force=True, scale=1/step)``.

The bitstream is CompressAI's strings behind a small header (see :func:`pack` / :func:`unpack`), so the decoder needs
the bytes alone: model, metric, weights kind, quality (or VBR step), original H x W, latent shape, and each string
with its length. ``bmshj2018-factorized-relu`` is left out: CompressAI 1.2.8's zoo entry builds and loads the plain
``bmshj2018-factorized`` model (it has no weights of its own), so it would only duplicate that codec.

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

from cdc_bench.codec import Availability, BitstreamError, Codec, CodecError, CodecUnavailable, check_image
from cdc_bench.download import DownloadError, offline_message, sha256_of
from cdc_bench.weights import WeightFile, WeightsMissing, get_weight, register_provider, register_weight

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
WEIGHT_KINDS = ("pretrained", "random")
MAGIC = b"CZ"
FORMAT_VERSION = 1
#: CompressAI's eval pads to allow 6 stride-2 layers.
PAD_MULTIPLE = 64
#: ``compressai.utils.eval_model``'s default quantization step sizes for VBR models (low rate first).
VBR_STEPS = (10.0, 7.1715, 5.1832, 3.7211, 2.6833, 1.9305, 1.3897, 1.0)
#: VBR models whose zoo loader enables the variable-rate entropy bottleneck (compressai.zoo.image_vbr).
VR_BOTTLENECK = ("bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr")
#: Seed of the random-weights models, so an encoder and a decoder in another process build the same network.
RANDOM_SEED = 0


# -- varint header helpers (shared with baselines.neuralcompression) ---------------------------------------------
def write_varint(value: int) -> bytes:
    """Unsigned LEB128: sizes and lengths cost one or two bytes instead of a fixed four."""
    if value < 0:
        raise ValueError(f"varint must be >= 0, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class Reader:
    """Reads a header from bytes; any read past the end is a :class:`BitstreamError` naming the field."""

    def __init__(self, data: bytes, what: str):
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(f"{self.what} bitstream is truncated (reading {field} at byte {self.pos} "
                                 f"of {len(self.data)})")
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def byte(self, field: str) -> int:
        return self.take(1, field)[0]

    def varint(self, field: str) -> int:
        value = shift = 0
        while True:
            byte = self.byte(field)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise BitstreamError(f"{self.what} bitstream is corrupt (runaway {field})")

    def done(self) -> None:
        if self.pos != len(self.data):
            raise BitstreamError(f"{self.what} bitstream has {len(self.data) - self.pos} unexpected trailing bytes")


def pack_strings(groups: Sequence[Sequence[bytes]]) -> bytes:
    """CompressAI's ``strings`` (one list per entropy model, one string per batch item) with their lengths."""
    out = bytearray(write_varint(len(groups)))
    for group in groups:
        if len(group) != 1:
            raise CodecError(f"expected one string per entropy model (batch of 1), got {len(group)}")
        out += write_varint(len(group[0])) + group[0]
    return bytes(out)


def unpack_strings(reader: Reader) -> list[list[bytes]]:
    count = reader.varint("number of strings")
    if count > 16:
        raise BitstreamError(f"{reader.what} bitstream is corrupt ({count} strings)")
    return [[reader.take(reader.varint(f"length of string {i}"), f"string {i}")] for i in range(count)]


# -- weights ---------------------------------------------------------------------------------------------------
def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), where CompressAI's own loader puts files."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


class HubWeight(WeightFile):
    """A weight file in the torch.hub cache. The folder is resolved at use time so ``TORCH_HOME`` is honoured.

    ``sha256`` may hold only a prefix (CompressAI publishes 8 hex digits in each file name, like torch.hub).
    """

    def locate(self) -> Path | None:
        self.path = torch_hub_checkpoints() / self.path.name
        return super().locate()

    def verify(self) -> bool | None:
        where = self.locate()
        if where is None or not self.sha256:
            return None
        return sha256_of(where).startswith(self.sha256)

    def missing_message(self) -> str:
        self.path = torch_hub_checkpoints() / self.path.name
        return (f"weight file {self.name} is missing: download {self.url} and put it in {self.path.parent}/ "
                f"as {self.path.name}" + (f" (its sha256 starts with {self.sha256})" if self.sha256 else "")
                + (f". {self.note}" if self.note else ""))


def fetch_hub_weight(weight: WeightFile) -> Path:
    """Download through torch.hub (as CompressAI's zoo does), checking the sha256 prefix; offline -> DownloadError."""
    import torch.hub

    dest = torch_hub_checkpoints() / Path(weight.url).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(weight.url, str(dest), hash_prefix=weight.sha256 or None, progress=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a hash mismatch is a RuntimeError
        raise DownloadError(offline_message(weight.name, weight.url, dest, err)) from None
    return dest


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
    register_weight(HubWeight(
        name=weight_name(model, metric, quality), url=url, path=torch_hub_checkpoints() / filename,
        sha256=prefix, used_by=[f"compressai:{model}"], fetch=fetch_hub_weight,
        note="CompressAI publishes only the first 8 hex digits of the sha256 (in the file name)"))


# -- the codec -------------------------------------------------------------------------------------------------
class CompressAIZooCodec(Codec):
    """One CompressAI zoo architecture; subclasses (built by :class:`CompressAIFamily`) set ``model``."""

    model: str = ""
    vbr: bool = False
    rate_label = "quality"
    settings = {"metric": "mse", "weights": "pretrained"}
    settings_help = {
        "metric": "training distortion of the weights: mse | ms-ssim",
        "weights": "pretrained (CompressAI's published weights) | random (seeded random init, for tests; "
                   "numbers are meaningless)",
    }

    def __init__(self, options: dict[str, Any] | None = None, device: str = "cpu"):
        super().__init__(options, device)
        self._loaded: tuple[Any, Any] | None = None  # ((metric, quality, weights), model)
        self._last_input: Any = None

    @classmethod
    def availability(cls) -> Availability:
        try:
            import compressai  # noqa: F401
        except ImportError as err:
            return Availability(False, f"compressai cannot be imported ({err})", 'pip install "compressai==1.2.8"')
        return Availability(True)

    def validate_options(self) -> None:
        if self.options["metric"] not in METRICS:
            raise CodecError(f"option {self.name}.metric must be one of {', '.join(METRICS)}, "
                             f"got {self.options['metric']!r}")
        if self.vbr and self.options["metric"] != "mse":
            raise CodecError(f"{self.name} has weights only for metric=mse (CompressAI 1.2.8 ships no ms-ssim VBR)")
        if self.options["weights"] not in WEIGHT_KINDS:
            raise CodecError(f"option {self.name}.weights must be pretrained or random, got {self.options['weights']!r}")

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        if self.options["weights"] != "pretrained":
            return []
        if self.vbr:
            return [weight_name(self.model, self.options["metric"], None)]
        return [weight_name(self.model, self.options["metric"], int(q)) for q in rate_points]

    # -- model loading ---------------------------------------------------------------------------------------
    def _model(self, metric: str, quality: int | None, weights: str):
        key = (metric, quality, weights)
        if self._loaded is not None and self._loaded[0] == key:
            return self._loaded[1]
        self._loaded = None  # free the previous model before building the next
        net = self._build(metric, quality, weights)
        self._loaded = (key, net)
        return net

    def _build(self, metric: str, quality: int | None, weights: str):
        import torch
        from compressai.zoo import image_models

        zoo_quality = quality if quality is not None else 0
        if weights == "random":
            # Seeded so that a decoder in another process rebuilds the very same network.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_SEED)
                extra = {"vr_entbttlnck": True} if self.model in VR_BOTTLENECK else {}
                net = image_models[self.model](quality=zoo_quality, metric=metric, pretrained=False, **extra)
            net.update(force=True)
        else:
            path = get_weight(weight_name(self.model, metric, quality)).ensure()
            net = load_zoo_checkpoint(self.model, path)
        if self.vbr:
            # As compressai.utils.eval_model sets them for VBR evaluation.
            net.no_quantoffset = False
            if self.model == "mbt2018-vbr":
                net.scl2ctx = True
        return net.eval().to(self.device)

    # -- coding ----------------------------------------------------------------------------------------------
    def _check_rate(self, rate: Any) -> tuple[int | None, float | None]:
        if self.vbr:
            try:
                step = float(rate)
            except (TypeError, ValueError):
                step = float("nan")
            if not math.isfinite(step) or not 0.1 <= step <= 100:
                raise CodecError(f"{self.name}: quantization step {rate!r} is out of range (use 1.0 to 10.0)")
            return None, step
        try:
            quality = int(float(rate))
        except (TypeError, ValueError):
            quality = -1
        if quality != float(rate if quality >= 0 else -1) or quality not in self.rate_points:
            raise CodecError(f"{self.name}: quality {rate!r} is not one of {list(self.rate_points)}")
        return quality, None

    def encode(self, image: np.ndarray, rate: Any) -> bytes:
        import torch
        import torch.nn.functional as F
        from compressai.ops import compute_padding

        check_image(image)
        quality, step = self._check_rate(rate)
        metric, weights = self.options["metric"], self.options["weights"]
        net = self._model(metric, quality, weights)
        h, w = image.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255).to(self.device)
        pad, _ = compute_padding(h, w, min_div=PAD_MULTIPLE)
        x = F.pad(x, pad, mode="constant", value=0)
        with torch.no_grad(), _ans():
            if self.vbr:
                scale = _vbr_scale(step)
                _vbr_update(net, self.model, scale)
                out = net.compress(x, stage=2, s=0, inputscale=scale)
            else:
                out = net.compress(x)
        self._last_input = (x, step)
        header = bytearray(MAGIC)
        header += bytes([FORMAT_VERSION, MODEL_CODES[self.model],
                         (metric == "ms-ssim") | ((weights == "random") << 1)])
        header += struct.pack("<f", step) if self.vbr else bytes([quality])
        header += write_varint(h) + write_varint(w)
        shape = [int(s) for s in out["shape"]]
        header += write_varint(len(shape)) + b"".join(write_varint(s) for s in shape)
        return bytes(header) + pack_strings(out["strings"])

    def decode(self, data: bytes) -> np.ndarray:
        import torch
        import torch.nn.functional as F
        from compressai.ops import compute_padding

        r = Reader(data, self.name)
        if r.take(2, "magic") != MAGIC:
            raise BitstreamError(f"not a compressai-zoo bitstream (bad magic) for {self.name}")
        version, code, flags = r.byte("version"), r.byte("model"), r.byte("flags")
        if version != FORMAT_VERSION:
            raise BitstreamError(f"{self.name}: bitstream format version {version}, this decoder reads {FORMAT_VERSION}")
        if code != MODEL_CODES[self.model]:
            other = next((k for k, v in MODEL_CODES.items() if v == code), f"unknown model code {code}")
            raise BitstreamError(f"bitstream was made by compressai:{other}, not {self.name}")
        metric = "ms-ssim" if flags & 1 else "mse"
        weights = "random" if flags & 2 else "pretrained"
        if weights != self.options["weights"]:
            raise BitstreamError(f"{self.name}: bitstream was made with weights={weights}, decoder has "
                                 f"weights={self.options['weights']}")
        if self.vbr:
            step, quality = struct.unpack("<f", r.take(4, "step"))[0], None
        else:
            quality, step = r.byte("quality"), None
            if quality not in self.rate_points:
                raise BitstreamError(f"{self.name}: bitstream has invalid quality {quality}")
        h, w = r.varint("height"), r.varint("width")
        shape = [r.varint("latent shape") for _ in range(r.varint("latent rank"))]
        strings = unpack_strings(r)
        r.done()
        if h < 1 or w < 1 or len(shape) != 2:
            raise BitstreamError(f"{self.name}: bitstream header is corrupt (size {h}x{w}, latent shape {shape})")
        net = self._model(metric, quality, weights)
        _, unpad = compute_padding(h, w, min_div=PAD_MULTIPLE)
        try:
            with torch.no_grad(), _ans():
                if self.vbr:
                    scale = _vbr_scale(step)
                    _vbr_update(net, self.model, scale)
                    out = net.decompress(strings, torch.Size(shape), stage=2, s=0, inputscale=scale)
                else:
                    out = net.decompress(strings, torch.Size(shape))
        except (RuntimeError, ValueError, IndexError) as err:
            raise BitstreamError(f"{self.name}: could not decode the bitstream ({err})") from None
        x_hat = F.pad(out["x_hat"], unpad)
        if tuple(x_hat.shape[-2:]) != (h, w):
            raise BitstreamError(f"{self.name}: latent shape {shape} does not match the image size {h}x{w}")
        # eval_model's 8-bit conversion: clamp then round.
        rgb = (x_hat[0] * 255).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0)
        return rgb.cpu().numpy()

    def estimated_bits(self) -> float | None:
        """Likelihood bits of the last encode (CompressAI's ``--entropy-estimation``), computed on request."""
        if self._last_input is None or self._loaded is None:
            return None
        import torch

        x, step = self._last_input
        net = self._loaded[1]
        with torch.no_grad():
            out = net(x, stage=2, s=0, inputscale=_vbr_scale(step)) if self.vbr else net(x)
        return float(sum(-torch.log2(lk).sum() for lk in out["likelihoods"].values()))


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
        rate_points: tuple = VBR_STEPS
        label = "quantization step (10 = lowest rate, 1 = highest)"
    else:
        from compressai.zoo.image import cfgs

        rate_points = tuple(sorted(cfgs[model]))
        label = f"quality ({rate_points[0]}-{rate_points[-1]})"
    attrs = {
        "name": f"compressai:{model}",
        "model": model,
        "vbr": vbr,
        "description": f"CompressAI zoo {model} ({'variable rate, ' if vbr else ''}ans range coder)",
        "rate_label": label,
        "rate_points": rate_points,
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
register_provider(__name__)

__all__ = ["FAMILY", "CompressAIFamily", "CompressAIZooCodec", "HubWeight", "WeightsMissing", "load_zoo_checkpoint",
           "pack_strings", "unpack_strings", "write_varint", "Reader", "torch_hub_checkpoints", "fetch_hub_weight"]
