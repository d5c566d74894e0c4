"""The ``.diffc`` bitstream: a self-describing header, the per-step bits, the rANS string of chunk indices, a CRC.

Layout (varints are unsigned LEB128)::

    "DIFC" | version | model id (varint length + ASCII) | height | width | T (training timesteps)
    | encode steps N | coded steps k | chunk bits | chunk padding | seed
    | k x (bits of step i) | payload length | payload (rANS) | CRC-32 of everything before it

``version`` names the seed/chunk layout (the generator of prng.py, the chunking of pfr.py, the code of
seedcode.py). The decoder checks the CRC first (a damaged stream fails there), then every field against its
bounds and the decoder's configuration (:func:`unpack` takes the checks as arguments), before any tensor is
allocated or a network is loaded. The denoising (sampler, steps) is the decoder's own configuration, as CDC's: it
changes no bit of the stream, so one stream decodes at every step count.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

from cdc_bench.errors import BitstreamError

from .._container import Reader, read_magic, write_varint

MAGIC = b"DIFC"
VERSION = 1
SAMPLERS = ("ddim", "flow")
MAX_MODEL_ID = 96
MAX_SIDE = 1 << 16
MAX_TIMESTEPS = 100_000


@dataclass(frozen=True)
class Header:
    model_id: str
    height: int
    width: int
    timesteps: int
    encode_steps: int
    chunk_bits: int
    chunk_padding: int
    seed: int
    step_bits: tuple[int, ...]  # one entry per coded step: ceil of its KL in bits

    @property
    def coded_steps(self) -> int:
        return len(self.step_bits)


def pack(header: Header, payload: bytes) -> bytes:
    out = bytearray(MAGIC) + bytes([VERSION])
    model = header.model_id.encode("ascii")
    out += write_varint(len(model)) + model
    for value in (header.height, header.width, header.timesteps, header.encode_steps, header.coded_steps,
                  header.chunk_bits, header.chunk_padding, header.seed, *header.step_bits, len(payload)):
        out += write_varint(value)
    out += payload
    return bytes(out) + zlib.crc32(out).to_bytes(4, "little")


def unpack(data: bytes, what: str, check_size: Callable[[int, int], None],
           step_bits_limit: Callable[[str, int, int, int, int], int]) -> tuple[Header, bytes]:
    """Parse and check a stream. ``check_size(h, w)`` raises for a size the decoder refuses;
    ``step_bits_limit(model, h, w, bits, padding)`` is the most bits one step may carry for that size."""
    if len(data) < len(MAGIC) + 5:
        raise BitstreamError(f"{what} bitstream is truncated ({len(data)} bytes)")
    body, crc = data[:-4], int.from_bytes(data[-4:], "little")
    reader = Reader(body, what)
    read_magic(reader, MAGIC, VERSION, "DiffC")
    if zlib.crc32(body) != crc:
        raise BitstreamError(f"{what} bitstream is damaged or truncated (CRC mismatch)")
    raw = reader.take(reader.varint("model id length", 1, MAX_MODEL_ID), "model id")
    try:
        model_id = raw.decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError(f"{what} bitstream is corrupt (model id is not ASCII)") from None
    height = reader.varint("height", 1, MAX_SIDE)
    width = reader.varint("width", 1, MAX_SIDE)
    check_size(height, width)
    timesteps = reader.varint("timesteps", 2, MAX_TIMESTEPS)
    encode_steps = reader.varint("encode steps", 1, timesteps - 1)
    coded = reader.varint("coded steps", 1, encode_steps)
    chunk_bits = reader.varint("chunk bits", 2, 20)
    padding = reader.varint("chunk padding", 0, chunk_bits - 1)
    seed = reader.varint("seed", 0, (1 << 32) - 1)
    limit = step_bits_limit(model_id, height, width, chunk_bits, padding)
    bits = tuple(reader.varint(f"bits of step {i}", 1, limit) for i in range(coded))
    payload = reader.take(reader.varint("payload length"), "payload")
    reader.done()
    return Header(model_id, height, width, timesteps, encode_steps, chunk_bits, padding, seed, bits), payload
