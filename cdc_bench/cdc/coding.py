"""The compressor's steps with real entropy coding in between: image → strings (encoder), strings → context
features (decoder). The codec calls these; the order of the network and coder steps lives only here.
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
    """x in [−1, 1] (B×3×H×W, multiples of 64) → one z and one y string per image."""
    with torch.inference_mode():
        out = comp.latents(x)
        z, mean, scale = out.hyper_latent.float().cpu(), out.latent_mean.float().cpu(), out.latent_scale.float().cpu()
        z_strings, z_hat = coder.encode_hyper(z)
        y_strings, y_hat = coder.encode_latent(out.latent.float().cpu(), mean, scale)
        if not (torch.equal(z_hat, out.q_hyper_latent.float().cpu()) and torch.equal(y_hat, out.q_latent.float().cpu())):
            raise RuntimeError("the entropy coder's quantised latents differ from the compressor's")
        bits = estimated_bits(coder.hyper.prior, z_hat, y_hat, mean, scale)
        crcs = [coder.scale_indexes_crc(scale[i:i + 1]) for i in range(len(z_strings))]
    return EncodedLatents(z_strings, y_strings, crcs, bits)


def _padded(strings: Sequence[bytes], symbols: int) -> list[bytes]:
    return [s + bytes(_RENORM_BYTES * symbols + 16) for s in strings]


def decode_context(comp: Any, coder: LatentCoder, z_strings: Sequence[bytes], y_strings: Sequence[bytes],
                   z_shape: Sequence[int], scale_crcs: Sequence[int], device: str) -> list[Tensor]:
    """Strings → ẑ → (μ, σ) → ŷ → context features (once per image, reused by every sampling step).

    Raises :class:`BitstreamError` when an image's scale-table indexes disagree with the encoder's (its CRC):
    the rANS decoder would otherwise silently desynchronise.
    """
    b, c, h, w = (int(v) for v in z_shape)
    with torch.inference_mode():
        z_hat = coder.decode_hyper(_padded(z_strings, c * h * w), (b, c, h, w))
        mean, scale = (t.float().cpu() for t in comp.hyper_synthesis(z_hat.to(device)))
        for i, crc in enumerate(scale_crcs):
            if coder.scale_indexes_crc(scale[i:i + 1]) != crc:
                raise BitstreamError(
                    "the decoder's entropy model disagrees with the encoder's (scale-index CRC mismatch): the "
                    "hyper-decoder rounded differently on this device/dtype/library version, or the stream was "
                    "altered. Decode on the kind of device that encoded it, in fp32")
        y_hat = coder.decode_latent(_padded(y_strings, mean[0].numel()), mean, scale)
        return comp.context(y_hat.to(device))
