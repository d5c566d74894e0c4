"""The compressor's steps with real entropy coding in between: image → strings (encoder), strings → context
features (decoder). The codec calls these; the order of the network and coder steps lives only here.

**One image per network call.** Every step whose output the entropy coder depends on (analysis, hyper-analysis,
hyper-synthesis → μ, σ) runs on one image at a time, on the encoder and the decoder alike, as the official code
does. A convolution's float result is not batch invariant: oneDNN picks another blocking for another batch size
(and thread count), so μ of a batch of two 64×64 crops differed from each crop's own μ in 6.5k of 6.6k elements
(full-size model, random weights, 1 thread); ŷ = symbols + μ then differs from the encoder's ŷ, and where σ moves
across a scale-table boundary the rANS decoder desynchronises (seen as a scale-index CRC mismatch at 192×128).
The per-image calls cost nothing measurable next to the denoiser, which still runs batched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import BitstreamError
from .entropy import LatentCoder, estimated_bits

#: compressai's rANS decoder reads its string without bounds checks; a crafted string with a valid CRC could make
#: it read past the end. Each symbol renormalises at most once (4 bytes) outside bypass mode, so padding a string
#: with 4 zero bytes per symbol keeps those reads inside our buffer (decoding stops after the last symbol).
_RENORM_BYTES = 4


@dataclass
class EncodedLatents:
    z_strings: list[bytes]
    y_strings: list[bytes]
    scale_crcs: list[int]
    bits: Tensor  # likelihood estimate per image (over the padded image)


def encode_latents(comp: Any, coder: LatentCoder, x: Tensor) -> EncodedLatents:
    """x in [−1, 1] (B×3×H×W, multiples of 64) → one z and one y string per image (each image coded alone)."""
    z_strings, y_strings, crcs, bits = [], [], [], []
    with torch.inference_mode():
        for image in x.split(1):
            out = comp.latents(image)
            z, mean, scale = (t.float().cpu() for t in (out.hyper_latent, out.latent_mean, out.latent_scale))
            (z_string,), z_hat = coder.encode_hyper(z)
            (y_string,), y_hat = coder.encode_latent(out.latent.float().cpu(), mean, scale)
            if not (torch.equal(z_hat, out.q_hyper_latent.float().cpu())
                    and torch.equal(y_hat, out.q_latent.float().cpu())):
                raise RuntimeError("the entropy coder's quantised latents differ from the compressor's")
            z_strings.append(z_string)
            y_strings.append(y_string)
            crcs.append(coder.scale_indexes_crc(scale))
            bits.append(estimated_bits(coder.hyper.prior, z_hat, y_hat, mean, scale))
    return EncodedLatents(z_strings, y_strings, crcs, torch.cat(bits))


def _padded(string: bytes, symbols: int) -> list[bytes]:
    return [string + bytes(_RENORM_BYTES * symbols + 16)]


def decode_latents(comp: Any, coder: LatentCoder, z_strings: Sequence[bytes], y_strings: Sequence[bytes],
                   z_shape: Sequence[int], scale_crcs: Sequence[int], device: str) -> tuple[Tensor, Tensor]:
    """Strings → (ẑ, ŷ), each image decoded alone: equal bit for bit to its encoder's ẑ and ŷ, in any batch.

    Raises :class:`BitstreamError` when an image's scale-table indexes disagree with the encoder's (its CRC):
    the rANS decoder would otherwise silently desynchronise.
    """
    _, c, h, w = (int(v) for v in z_shape)
    z_hats, y_hats = [], []
    with torch.inference_mode():
        for z_string, y_string, crc in zip(z_strings, y_strings, scale_crcs, strict=True):
            z_hat = coder.decode_hyper(_padded(z_string, c * h * w), (1, c, h, w))
            mean, scale = (t.float().cpu() for t in comp.hyper_synthesis(z_hat.to(device)))
            if coder.scale_indexes_crc(scale) != crc:
                raise BitstreamError(
                    "the decoder's entropy model disagrees with the encoder's (scale-index CRC mismatch): the "
                    "hyper-decoder rounded differently on this device/dtype/library version, or the stream was "
                    "altered. Decode on the kind of device that encoded it, in fp32")
            z_hats.append(z_hat)
            y_hats.append(coder.decode_latent(_padded(y_string, mean.numel()), mean, scale))
    return torch.cat(z_hats), torch.cat(y_hats)


def decode_context(comp: Any, coder: LatentCoder, z_strings: Sequence[bytes], y_strings: Sequence[bytes],
                   z_shape: Sequence[int], scale_crcs: Sequence[int], device: str) -> list[Tensor]:
    """Strings → ẑ → (μ, σ) → ŷ → context features (once per image, reused by every sampling step).

    The context decoder also runs per image, so the denoiser's conditioning of an image in a batch equals its
    conditioning alone; only the (batched) denoiser may round differently.
    """
    _, y_hat = decode_latents(comp, coder, z_strings, y_strings, z_shape, scale_crcs, device)
    with torch.inference_mode():
        per_image = [comp.context(y.to(device)) for y in y_hat.split(1)]
    return [torch.cat(level) for level in zip(*per_image)]
