"""The container shared by the learned baselines: varints, strings, header bounds, the rANS guard, hub weights."""

from __future__ import annotations

import pytest

from baselines import _container as c
from cdc_bench.codecs.base import BitstreamError


def test_varint_header_round_trip():
    for value in (0, 1, 127, 128, 300, 65535, 2**40):
        assert c.Reader(c.write_varint(value), "t").varint("v") == value
    packed = c.pack_strings([[b"abc"], [b""], [bytes(200)]])
    assert c.unpack_strings(c.Reader(packed, "t")) == [[b"abc"], [b""], [bytes(200)]]


def test_header_fields_out_of_bounds_are_bitstream_errors():
    with pytest.raises(BitstreamError, match="height 0 is outside 1.."):
        c.Reader(c.write_varint(0), "t").varint("height", 1)
    with pytest.raises(BitstreamError, match="latent rank 9"):
        c.Reader(c.write_varint(9), "t").varint("latent rank", 0, 4)
    with pytest.raises(BitstreamError, match="runaway"):
        c.Reader(b"\xff" * 12, "t").varint("v")
    packed = c.pack_strings([[b"abcd"], [b"efgh"]])
    with pytest.raises(BitstreamError, match="2 strings; this model codes 1"):
        c.unpack_strings(c.Reader(packed, "t"), 1)
    # a string length beyond the bytes left is refused before anything is read or allocated
    with pytest.raises(BitstreamError, match="truncated .reading string 0"):
        c.unpack_strings(c.Reader(b"\x01\xff\xff\xff\x7f", "t"))
    with pytest.raises(BitstreamError, match="bad magic"):
        c.read_magic(c.Reader(b"XY\x01", "t"), b"CZ", 1, "test")
    with pytest.raises(BitstreamError, match="version 2"):
        c.read_magic(c.Reader(b"CZ\x02", "t"), b"CZ", 1, "test")


def test_rans_guard_refuses_short_or_ragged_strings_and_pads_the_rest():
    for bad in (b"", b"abc", bytes(10)):
        with pytest.raises(BitstreamError, match="whole 32-bit words"):
            c.rans_guard([[bad]], 10, "t")
    (guarded,), = c.rans_guard([[b"12345678"]], 10, "t")
    assert guarded[:8] == b"12345678" and set(guarded[8:]) == {0} and len(guarded) >= 8 + 40 + 128
