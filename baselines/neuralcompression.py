"""MS-ILLM and No-GAN (Muckley et al., ICML 2023): NeuralCompression's HiFiC-architecture releases, quality 1-6,
and MS-ILLM's two very-low-rate models ``vlo1`` / ``vlo2`` (~0.002 / ~0.004 bpp, added to the hub in 2024).

Why our own copy of the architecture instead of depending on the ``neuralcompression`` package: its release
(0.3.1) pins ``scipy<=1.11.1`` (we need a newer scipy for clean-fid/scikit-image on Python 3.11) and pulls
fvcore, pytorchvideo, torch-fidelity, torchmetrics and DISTS at import time, for a network that is ~150 lines of
torch plus CompressAI's entropy models. So :class:`HiFiCAutoencoder` below re-states
``neuralcompression.models.HiFiCAutoencoder`` (defaults: 220 latent / 320 hyper channels, 9 residual blocks) with
the **same module names**, so the published checkpoints load unchanged with ``load_state_dict`` (strict), and the
same ``compress``/``decompress`` computations (reflect-pad to 64 at the bottom/right, CompressAI
``EntropyBottleneck`` + ``GaussianConditional`` with means, ``ans`` coder). The layout is pinned by a test against
the key/shape list dumped from neuralcompression 0.3.1, and was cross-checked against the package itself (same
bytes, same reconstruction on a shared random state dict).

Weights are the files torch.hub fetches for ``facebookresearch/NeuralCompression`` (``msillm_quality_N`` /
``noganms_quality_N``), kept in torch.hub's checkpoint cache; no checksum is published for them. The bitstream
is the two CompressAI strings behind a small header (model, quality, weights kind, H x W), so decoding needs the
bytes alone; the decoder checks every field (and H x W against ``max_pixels``) before it builds a tensor.
NeuralCompression's own evaluation counts a pickled object instead, a few dozen bytes more per image.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cdc_bench.codecs.base import BitstreamError, CodecError, CodecUnavailable, Encoded, Rate
from cdc_bench.weights import WeightFile, register_weight

from ._container import (MAX_PIXELS_OPTION, WEIGHTS_OPTION, LearnedCodec, Reader, fetch_hub_weight, hub_path,
                         pack_strings, rans_guard, read_magic, seeded, unpack_strings,
                         weight_path, write_varint)

URL_ROOT = "https://dl.fbaipublicfiles.com/NeuralCompression/2023-muckley-msillm"
#: quality level -> training rate target, as in NeuralCompression's hubconf.py
TARGETS = {1: "0.035bpp", 2: "0.07bpp", 3: "0.14bpp", 4: "0.3bpp", 5: "0.45bpp", 6: "0.9bpp"}
#: MS-ILLM only: msillm_quality_vlo1 / vlo2 (NeuralCompression zoo/_msillm.py, 2024), the same architecture
VERY_LOW_TARGETS = {"vlo1": "0.00218bpp", "vlo2": "0.00438bpp"}
#: their rate byte in the header (quality levels use 1-6)
VERY_LOW_CODES = {"vlo1": 11, "vlo2": 12}
FACTOR = 64  # the autoencoder's total downsampling (encoder 16 x hyper-analysis 4)
MAGIC = b"NC"
FORMAT_VERSION = 1
LICENSE_NOTE = ("MS-ILLM/No-GAN weights are released under CC-BY-NC 4.0 "
                "(https://github.com/facebookresearch/NeuralCompression/tree/main/WEIGHTS_LICENSE)")


# -- the architecture (names follow neuralcompression/models/_hific_*.py) ----------------------------------------
def _build_modules():
    """Define the torch modules lazily so importing this file (``cdc-bench codecs``) does not import torch."""
    import torch
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.models import CompressionModel
    from torch import nn

    class ChannelNorm2D(nn.Module):
        """HiFiC's channel normalization: normalize over channels per pixel (population-free, resolution-robust)."""

        def __init__(self, channels: int, epsilon: float = 1e-3):
            super().__init__()
            self.epsilon = epsilon
            self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
            self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

        def forward(self, x):
            mean = torch.mean(x, dim=1, keepdim=True)
            variance = torch.var(x, dim=1, keepdim=True)
            return self.gamma * ((x - mean) * torch.rsqrt(variance + self.epsilon)) + self.beta

    class HiFiCEncoder(nn.Module):
        def __init__(self, in_channels: int = 3, latent_features: int = 220):
            super().__init__()
            blocks: list[nn.Module] = []
            for index, out_channels in enumerate((60, 120, 240, 480, 960)):
                conv = (nn.Conv2d(in_channels, out_channels, kernel_size=7, padding=3) if index == 0 else
                        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1))
                blocks.append(nn.Sequential(conv, ChannelNorm2D(out_channels), nn.ReLU()))
                in_channels = out_channels
            blocks.append(nn.Conv2d(in_channels, latent_features, kernel_size=3, padding=1))
            self.blocks = nn.Sequential(*blocks)

        def forward(self, x):
            return self.blocks(x)

    class ResidualBlock(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.sequence = nn.Sequential(
                nn.Conv2d(channels, channels, 3, 1, padding=1), ChannelNorm2D(channels), nn.ReLU(),
                nn.Conv2d(channels, channels, 3, 1, padding=1), ChannelNorm2D(channels))

        def forward(self, x):
            return x + self.sequence(x)

    class HiFiCGenerator(nn.Module):
        def __init__(self, image_channels: int = 3, latent_features: int = 220, n_residual_blocks: int = 9):
            super().__init__()
            filters = [960, 480, 240, 120, 60]
            self.block_0 = nn.Sequential(ChannelNorm2D(latent_features),
                                         nn.Conv2d(latent_features, filters[0], kernel_size=3, padding=1),
                                         ChannelNorm2D(filters[0]))
            self.resid_blocks = nn.Sequential(*[ResidualBlock(filters[0]) for _ in range(n_residual_blocks)])
            blocks: list[nn.Module] = []
            for cin, cout in zip(filters[:-1], filters[1:]):
                blocks.append(nn.Sequential(
                    nn.ConvTranspose2d(cin, cout, kernel_size=3, output_padding=1, stride=2, padding=1),
                    ChannelNorm2D(cout), nn.ReLU()))
            blocks.append(nn.Conv2d(filters[-1], image_channels, kernel_size=7, padding=3))
            self.blocks = nn.Sequential(*blocks)

        def forward(self, x):
            x = self.block_0(x)
            x = x + self.resid_blocks(x)  # (sic) a skip around the whole residual stack, as upstream
            return self.blocks(x)

    def conv(cin, cout, kernel_size=5, stride=2):
        return nn.Conv2d(cin, cout, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2)

    def deconv(cin, cout, kernel_size=5, stride=2):
        return nn.ConvTranspose2d(cin, cout, kernel_size=kernel_size, stride=stride, output_padding=1,
                                  padding=kernel_size // 2)

    def hyper_synthesis(hyper: int, latent: int):
        return nn.Sequential(deconv(hyper, hyper), nn.ReLU(inplace=True), deconv(hyper, hyper),
                             nn.ReLU(inplace=True), conv(hyper, latent, stride=1, kernel_size=3))

    class HiFiCAutoencoder(CompressionModel):
        """State-dict compatible with ``neuralcompression.models.HiFiCAutoencoder`` (CPU coding path only).

        Subclassing CompressAI's ``CompressionModel`` gives its ``load_state_dict`` (resizes the CDF buffers and
        remaps older EntropyBottleneck key names) and ``update``.
        """

        def __init__(self, in_channels: int = 3, latent_features: int = 220, hyper_features: int = 320,
                     num_residual_blocks: int = 9):
            super().__init__()
            self.encoder = HiFiCEncoder(in_channels, latent_features)
            self.decoder = HiFiCGenerator(in_channels, latent_features, num_residual_blocks)
            self.hyper_analysis = nn.Sequential(
                conv(latent_features, hyper_features, stride=1, kernel_size=3), nn.ReLU(inplace=True),
                conv(hyper_features, hyper_features), nn.ReLU(inplace=True), conv(hyper_features, hyper_features))
            self.hyper_synthesis_mean = hyper_synthesis(hyper_features, latent_features)
            self.hyper_synthesis_scale = hyper_synthesis(hyper_features, latent_features)
            self.hyper_bottleneck = EntropyBottleneck(hyper_features)
            self.latent_bottleneck = GaussianConditional(scale_table=None)

        def compress(self, image) -> dict[str, Any]:
            """``image`` in [0, 1], already padded to a multiple of 64 -> CompressAI strings."""
            latent = self.encoder(image)
            hyper_latent = self.hyper_analysis(latent)
            hyper_strings = self.hyper_bottleneck.compress(hyper_latent)
            hyper_decoded = self.hyper_bottleneck.decompress(hyper_strings, hyper_latent.shape[-2:])
            means = self.hyper_synthesis_mean(hyper_decoded)
            scales = self.hyper_synthesis_scale(hyper_decoded)
            indexes = self.latent_bottleneck.build_indexes(scales)
            latent_strings = self.latent_bottleneck.compress(latent, indexes, means=means)
            return {"strings": [latent_strings, hyper_strings], "latent": latent, "means": means,
                    "hyper_latent": hyper_latent, "scales": scales}

        def decompress(self, strings, padded_size: tuple[int, int]):
            latent_size = (padded_size[0] // 16, padded_size[1] // 16)
            hyper_decoded = self.hyper_bottleneck.decompress(strings[1], (latent_size[0] // 4, latent_size[1] // 4))
            means = self.hyper_synthesis_mean(hyper_decoded)
            scales = self.hyper_synthesis_scale(hyper_decoded)
            indexes = self.latent_bottleneck.build_indexes(scales)
            latent = self.latent_bottleneck.decompress(strings[0], indexes, means=means)
            return self.decoder(latent).clamp(0.0, 1.0)

        def likelihood_bits(self, compressed: dict[str, Any]) -> float:
            """Bits the entropy models assign to the quantized latents of a :meth:`compress` result (eval mode,
            no noise; the decoded hyper-latent equals the rounded one, so its means and scales are reused)."""
            _, hyper_lik = self.hyper_bottleneck(compressed["hyper_latent"], training=False)
            _, latent_lik = self.latent_bottleneck(compressed["latent"], compressed["scales"],
                                                   means=compressed["means"], training=False)
            return float(-torch.log2(hyper_lik).sum() - torch.log2(latent_lik).sum())

    return HiFiCAutoencoder


_MODEL_CLASS = None


def hific_autoencoder_class():
    """The :class:`HiFiCAutoencoder` torch module class (built on first use)."""
    global _MODEL_CLASS
    if _MODEL_CLASS is None:
        _MODEL_CLASS = _build_modules()
    return _MODEL_CLASS


def config_from_state_dict(state: dict) -> dict[str, int]:
    """The constructor arguments a state dict was saved with (as diffusers reads a config beside the weights).

    The published checkpoints all use the defaults; reading them from the tensors keeps a smaller or retrained
    variant loadable, and gives a clear error for a file of another architecture.
    """
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("decoder.resid_blocks.")}
    try:
        return {"latent_features": int(state["encoder.blocks.5.weight"].shape[0]),
                "hyper_features": int(state["hyper_analysis.0.weight"].shape[0]),
                "num_residual_blocks": max(blocks) + 1 if blocks else 0}
    except (KeyError, AttributeError, IndexError) as err:
        raise KeyError(f"not a HiFiC autoencoder state dict (no {err})") from None


def load_hific_checkpoint(path) -> Any:
    """Build the autoencoder from a NeuralCompression checkpoint (a plain state dict), ``weights_only=True``."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise CodecUnavailable(f"cannot read checkpoint {path} ({type(err).__name__}: {err})",
                               f"delete {path} and run again to re-download it") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        net = hific_autoencoder_class()(**config_from_state_dict(state))
        net.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        raise CodecUnavailable(f"checkpoint {path} does not fit the HiFiC autoencoder ({str(err)[:400]})",
                               f"delete {path} and run again to re-download it") from None
    net.update()  # as NeuralCompression's eval: computes CDF tables only if the checkpoint lacks them
    return net


# -- weights -----------------------------------------------------------------------------------------------------
def weight_name(prefix: str, quality: int | str) -> str:
    return f"neuralcompression/{prefix}-{quality}"


def _register_weights() -> None:
    for prefix, codec in (("msillm", "msillm"), ("noganms", "nogan")):
        targets = {**VERY_LOW_TARGETS, **TARGETS} if prefix == "msillm" else TARGETS
        for quality, target in targets.items():
            filename = f"{prefix}_target_{target}.ckpt"
            register_weight(WeightFile(
                name=weight_name(prefix, quality), url=f"{URL_ROOT}/{filename}",
                path=hub_path(filename), sha256=None, used_by=[codec], fetch=fetch_hub_weight,
                note=f"No checksum is published for it. {LICENSE_NOTE}"))


# -- the codecs --------------------------------------------------------------------------------------------------
def padded_input(image: np.ndarray, device: str = "cpu") -> tuple[Any, str]:
    """The network input: [0, 1] floats padded at the bottom/right to a multiple of 64, and a note if the image is
    too small to reflect-pad (upstream's ``pad_image_to_factor`` reflects, which needs a pad smaller than the image).
    """
    import torch
    import torch.nn.functional as F

    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255).to(device)
    pad_h, pad_w = (-h) % FACTOR, (-w) % FACTOR
    if not (pad_h or pad_w):
        return x, ""
    if pad_h < h and pad_w < w:
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect"), ""
    note = f"image {h}x{w} too small to reflect-pad to {FACTOR}; edge-replicated instead"
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate"), note


class _HiFiCRelease(LearnedCodec):
    """Shared adapter; subclasses set the checkpoint prefix and the header code."""

    prefix: str = ""
    code: int = 0
    rate = Rate.choice((1, 2, 3, 4, 5, 6), label="quality", note="the released quality levels")
    smoke_options = {"weights": "random"}
    option_specs = {"weights": WEIGHTS_OPTION, "max_pixels": MAX_PIXELS_OPTION}
    #: constructor arguments of the random-weights network (a subclass may make it smaller, e.g. for fuzzing)
    random_config: dict[str, int] = {}
    #: named very-low-rate models beside the quality levels (MS-ILLM's vlo1 / vlo2)
    very_low: tuple[str, ...] = ()
    #: peak resident bytes of a CPU decode per pixel, and of the loaded network (every quality has the same
    #: network): 1.5 x the figures measured in results/decode_memory.json (benchmarks/decode_memory.py)
    decode_bytes_per_pixel = 2100
    decode_model_bytes = 2252 << 20

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        if self.options["weights"] != "pretrained":
            return []
        return [weight_name(self.prefix, self.validate_rate(q)) for q in rate_points]

    def _model_for(self, quality: int, decoding: bool = False):
        if self.options["weights"] == "random":  # one network for all qualities
            return self.cached_model(("random",), lambda: seeded(lambda: hific_autoencoder_class()(
                **self.random_config)))
        return self.cached_model((quality, "pretrained"), lambda: load_hific_checkpoint(
            weight_path(weight_name(self.prefix, quality), decoding)))  # ~0.7 GB each: one at a time

    def _encode(self, image: np.ndarray, rate: int) -> Encoded:
        import torch

        h, w = image.shape[:2]
        self.check_size(h, w, CodecError)
        net = self._model_for(rate)
        x, note = padded_input(image, self.device)
        with torch.no_grad():
            out = net.compress(x)
            estimated = net.likelihood_bits(out)
        header = bytearray(MAGIC) + bytes([FORMAT_VERSION, self.code | ((self.options["weights"] == "random") << 7),
                                           VERY_LOW_CODES.get(rate, rate)])
        header += write_varint(h) + write_varint(w)
        return Encoded(bytes(header) + pack_strings(out["strings"]), estimated_bits=estimated,
                       info={"codec_note": note} if note else {})

    def _decode(self, data: bytes) -> np.ndarray:
        import torch

        r = Reader(data, self.name)
        read_magic(r, MAGIC, FORMAT_VERSION, "NeuralCompression HiFiC")
        code, quality = r.byte("model"), r.byte("quality")
        if code & 0x7F != self.code:
            other = {c.code: c.name for c in (MSILLM, NoGAN)}.get(code & 0x7F, f"unknown code {code & 0x7F}")
            raise BitstreamError(f"bitstream was made by {other}, not {self.name}")
        self.check_flag("weights", "random" if code & 0x80 else "pretrained")
        named = {VERY_LOW_CODES[n]: n for n in self.very_low}
        quality = self.validate_rate(named.get(quality, quality), BitstreamError)
        h, w = r.varint("height", 1), r.varint("width", 1)
        self.check_size(h, w)  # before any tensor: a header claiming 4096 x 4096 costs nothing
        strings = unpack_strings(r, 2)
        r.done()
        padded = (h + (-h) % FACTOR, w + (-w) % FACTOR)
        net = self._model_for(quality, decoding=True)
        # symbols: latent channels at 1/16 of the padded size plus hyper-latent channels at 1/64
        symbols = (padded[0] // 16) * (padded[1] // 16) * net.encoder.blocks[-1].out_channels \
            + (padded[0] // 64) * (padded[1] // 64) * net.hyper_bottleneck.channels
        strings = rans_guard(strings, symbols, self.name)
        with torch.no_grad():
            x_hat = net.decompress(strings, padded)
        # NeuralCompression's eval: (x * 255 + 0.5) -> uint8 (round half up), on the un-padded image.
        rgb = (x_hat[0, :, :h, :w] * 255 + 0.5).to(torch.uint8).permute(1, 2, 0)
        return rgb.cpu().numpy()


class MSILLM(_HiFiCRelease):
    name = "msillm"
    prefix = "msillm"
    code = 1
    very_low = tuple(VERY_LOW_TARGETS)
    # low rate first: vlo1 ~0.002 bpp ... 6 ~0.9 bpp
    rate = Rate.choice(("vlo1", "vlo2", 1, 2, 3, 4, 5, 6), label="quality",
                       note="the released checkpoints: very-low-rate vlo1, vlo2 and levels 1-6")
    description = "MS-ILLM (Muckley et al. 2023): HiFiC autoencoder, adversarial training with a latent discriminator"
    details = (f"NeuralCompression msillm_quality_vlo1, vlo2, 1..6 checkpoints ({URL_ROOT}); our "
               "state-dict-compatible HiFiC autoencoder; CompressAI entropy models, ans coder; reflect-padded to 64")


class NoGAN(_HiFiCRelease):
    name = "nogan"
    prefix = "noganms"
    code = 2
    description = "No-GAN (Muckley et al. 2023): the MS-ILLM autoencoder trained without the adversarial loss"
    details = (f"NeuralCompression noganms_quality_1..6 checkpoints ({URL_ROOT}); same architecture and coding as "
               "msillm")


_register_weights()
