"""StableCodec's bitstream: our header, then the two CompressAI strings of the official coder.

``b"SC" | version | flags (bit 7: random weights) | lambda | varint H | varint W | varint count | (varint length,
bytes) per string`` with the y string first, then the z string, as upstream's ``strings``. Upstream's own file
(``write_body``) holds the hyper-latent's size and the strings but not the image size, so its decoder cannot crop
without the original; ours records H x W instead (the hyper-latent size follows from it: the padded size / 256).

Every field is checked before anything is allocated: magic, version, lambda one of the releases, size within
``max_pixels``, exactly two strings whose lengths fit the bytes that are there.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdc_bench.codecs.base import BitstreamError

from .._container import Reader, pack_strings, read_magic, unpack_strings, write_varint

MAGIC = b"SC"
VERSION = 1
PAD = 256  # the image is padded to a multiple of this (VAE 8 x latent codec 4 x hyperprior 4... x 2)
LAMBDAS = (2, 3, 4, 6, 8, 12, 16, 24, 32)


@dataclass(frozen=True)
class Header:
    lam: int
    height: int
    width: int
    random_weights: bool

    @property
    def padded(self) -> tuple[int, int]:
        return (-(-self.height // PAD) * PAD, -(-self.width // PAD) * PAD)

    @property
    def z_shape(self) -> tuple[int, int]:
        return (self.padded[0] // PAD, self.padded[1] // PAD)


def write(header: Header, strings) -> bytes:
    if header.lam not in LAMBDAS:
        raise ValueError(f"lambda {header.lam} is not a release ({LAMBDAS})")
    out = bytearray(MAGIC) + bytes([VERSION, 0x80 if header.random_weights else 0, header.lam])
    out += write_varint(header.height) + write_varint(header.width)
    return bytes(out) + pack_strings(strings)


def read(data: bytes, what: str, check_size) -> tuple[Header, list[list[bytes]]]:
    """Header and strings; ``check_size(h, w)`` raises for sizes the decoder will not allocate."""
    r = Reader(data, what)
    read_magic(r, MAGIC, VERSION, "StableCodec")
    flags = r.byte("flags")
    if flags & 0x7F:
        raise BitstreamError(f"{what} bitstream is corrupt (unknown flags {flags:#04x})")
    lam = r.byte("lambda")
    if lam not in LAMBDAS:
        raise BitstreamError(f"{what} bitstream is corrupt (lambda {lam} is not one of the releases {LAMBDAS})")
    h, w = r.varint("height", 1, 1 << 16), r.varint("width", 1, 1 << 16)
    check_size(h, w)
    strings = unpack_strings(r, 2)
    r.done()
    return Header(lam, h, w, bool(flags & 0x80)), strings
