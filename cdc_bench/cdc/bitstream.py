"""CDC's bitstream: a small versioned header, the two entropy-coded strings, and a CRC32.

Layout (big-endian)::

    magic      4s   b"CDCb"
    version    B    FORMAT_VERSION
    variant    B    0 = x-param, 1 = eps-param
    coder      B    entropy-coder table set (entropy.py constants); the decoder must build the same tables
    id_len     B    length of model_id
    model_id   ...  utf-8: which weights encoded it (released lambda, checkpoint digest, or random seed)
    height     I    original image height (the decoder crops back to it)
    width      I    original image width
    pad_h      I    padded height fed to the network (multiple of 64)
    pad_w      I    padded width
    timesteps  I    the model's T, so a decoder with other weights fails loudly instead of decoding noise
    scale_crc  I    CRC32 of the latent's scale-table indexes (see below)
    z_len      I    bytes of the hyper-latent string
    y_len      I    bytes of the latent string
    z bytes, y bytes
    crc32      I    over everything before it

The CRC costs 4 bytes per image but means a corrupted file raises :class:`BitstreamError` before it reaches the
rANS decoder, which has no error detection of its own and would silently decode garbage.
The scale-index CRC guards the one fragile step of learned entropy coding: the decoder recomputes the Gaussian
scales from ẑ with its own float arithmetic, and if another device or library rounds one scale across a table
boundary, the rANS decoder would silently desynchronise. With the CRC the decoder raises a clear error instead.
The sampler's per-run options (steps, gamma, eta, seed) are decoder options, not part of the bitstream.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import BitstreamError

MAGIC = b"CDCb"
FORMAT_VERSION = 1
VARIANTS = ("x", "eps")
CODERS = (1,)  # entropy-coder table sets this decoder can build (entropy.py: 200 log-spaced scales, 16-bit rANS)
PAD_MULTIPLE = 64  # every CDC config needs sides that are multiples of 64
MAX_TIMESTEPS = 1_000_000
_FIXED = struct.Struct(">4sBBBB")
_SIZES = struct.Struct(">IIIIIIII")
_CRC = struct.Struct(">I")


@dataclass(frozen=True)
class Header:
    variant: str
    model_id: str
    height: int
    width: int
    padded_height: int
    padded_width: int
    num_timesteps: int
    scale_crc: int = 0
    coder: int = 1

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if len(self.model_id.encode()) > 255:
            raise ValueError(f"model id too long (max 255 bytes): {self.model_id!r}")
        if not (0 < self.height <= self.padded_height and 0 < self.width <= self.padded_width):
            raise ValueError(f"bad sizes: image {self.height}x{self.width}, "
                             f"padded {self.padded_height}x{self.padded_width}")
        if self.padded_height % PAD_MULTIPLE or self.padded_width % PAD_MULTIPLE \
                or self.padded_height - self.height >= PAD_MULTIPLE or self.padded_width - self.width >= PAD_MULTIPLE:
            raise ValueError(f"padded size {self.padded_height}x{self.padded_width} is not the image size "
                             f"{self.height}x{self.width} rounded up to a multiple of {PAD_MULTIPLE}")
        if not 0 < self.num_timesteps <= MAX_TIMESTEPS:
            raise ValueError(f"number of timesteps {self.num_timesteps} out of range 1..{MAX_TIMESTEPS}")
        if self.coder not in CODERS:
            raise ValueError(f"entropy-coder table set {self.coder} is unknown (this decoder builds "
                             f"{', '.join(map(str, CODERS))}); decode it with the cdc-bench version that wrote it")


def pack(header: Header, z_string: bytes, y_string: bytes) -> bytes:
    """Serialise one image's header and strings."""
    model_id = header.model_id.encode()
    body = b"".join([
        _FIXED.pack(MAGIC, FORMAT_VERSION, VARIANTS.index(header.variant), header.coder, len(model_id)),
        model_id,
        _SIZES.pack(header.height, header.width, header.padded_height, header.padded_width,
                    header.num_timesteps, header.scale_crc, len(z_string), len(y_string)),
        z_string,
        y_string,
    ])
    return body + _CRC.pack(zlib.crc32(body))


#: CompressAI's rANS coder writes 32-bit words and flushes a 64-bit state: every string is >= 8 bytes, a multiple of 4
MIN_RANS_BYTES = 8


def unpack(data: bytes) -> tuple[Header, bytes, bytes]:
    """Parse :func:`pack`'s output; raises :class:`BitstreamError` for anything that is not an intact CDC stream.

    Every header field is checked here (sizes, coder, timesteps, lengths, CRC); what depends on the decoder's
    configuration (pixel cap, which weights it may load) is checked by the codec, still before any allocation.
    """
    data = bytes(data)
    if len(data) < _FIXED.size:
        raise BitstreamError(f"CDC bitstream truncated: {len(data)} bytes, a header alone needs more")
    magic, version, variant, coder, id_len = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError(f"not a CDC bitstream (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"CDC bitstream format version {version} is not supported (this decoder reads "
                             f"version {FORMAT_VERSION}); decode it with the cdc-bench version that wrote it")
    pos = _FIXED.size + id_len
    if len(data) < pos + _SIZES.size + _CRC.size:
        raise BitstreamError(f"CDC bitstream truncated: {len(data)} bytes, header needs {pos + _SIZES.size + 4}")
    h, w, ph, pw, steps, scale_crc, z_len, y_len = _SIZES.unpack_from(data, pos)
    pos += _SIZES.size
    expected = pos + z_len + y_len + _CRC.size
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise BitstreamError(f"CDC bitstream {kind}: {len(data)} bytes, header says {expected}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[:-_CRC.size]) != crc:
        raise BitstreamError("CDC bitstream is corrupted (CRC32 mismatch)")
    try:
        model_id = data[_FIXED.size:_FIXED.size + id_len].decode("ascii")
        header = Header(VARIANTS[variant], model_id, h, w, ph, pw, steps, scale_crc, coder)
    except (UnicodeDecodeError, IndexError, ValueError) as err:
        raise BitstreamError(f"CDC bitstream header is invalid: {err}") from None
    for name, length in (("z", z_len), ("y", y_len)):
        if length < MIN_RANS_BYTES or length % 4:
            raise BitstreamError(f"CDC bitstream's {name}-string is {length} bytes; a rANS string is a whole number "
                                 f"of 32-bit words and at least {MIN_RANS_BYTES} bytes (its flushed state)")
    return header, data[pos:pos + z_len], data[pos + z_len:pos + z_len + y_len]
