"""CDC bitstream container: round trip, and clear errors for truncated or corrupted bytes."""
from __future__ import annotations

import pytest

from cdc_bench.cdc.bitstream import MAGIC, Header, pack, unpack
from cdc_bench.codecs.base import BitstreamError

HEADER = Header("x", "released:x:0.0032", 512, 767, 512, 768, 8193, scale_crc=0xDEADBEEF)


def test_round_trip():
    data = pack(HEADER, b"zz\x00zzzzz", b"y" * 1000)
    header, z, y = unpack(data)
    assert header == HEADER
    assert z == b"zz\x00zzzzz" and y == b"y" * 1000
    # fixed overhead: 8 fixed + id + 32 sizes + 4 crc
    assert len(data) == 8 + len(HEADER.model_id) + 32 + 4 + 8 + 1000


def test_eps_variant_and_shortest_strings():
    header = Header("eps", "", 1, 1, 64, 64, 20000)
    assert unpack(pack(header, b"z" * 8, b"y" * 8)) == (header, b"z" * 8, b"y" * 8)


@pytest.mark.parametrize("z, y", [(b"z" * 8, b""), (b"z" * 8, b"yyy"), (b"z" * 8, b"y" * 10), (b"", b"y" * 8),
                                  (b"zzzz", b"y" * 8)])
def test_a_string_no_rans_coder_writes_is_refused(z, y):
    """CompressAI's rANS output is whole 32-bit words and at least its 8-byte flushed state; 0 or 3 bytes is not."""
    with pytest.raises(BitstreamError, match="-string is .* bytes; a rANS string"):
        unpack(pack(HEADER, z, y))


@pytest.mark.parametrize("cut", [0, 3, 9, 30, -5, -1])
def test_truncated(cut):
    data = pack(HEADER, b"abcdefgh", b"defgh" * 4)
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(data[:cut])


def test_trailing_bytes():
    with pytest.raises(BitstreamError, match="trailing"):
        unpack(pack(HEADER, b"abcdefgh", b"defgh" * 4) + b"\x00")


def test_every_single_byte_flip_is_detected():
    data = bytearray(pack(HEADER, b"abcdefgh", b"defgh" * 20))
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x10
        with pytest.raises(BitstreamError):
            unpack(bytes(bad))


def test_not_cdc_and_wrong_version():
    with pytest.raises(BitstreamError, match="not a CDC bitstream"):
        unpack(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    data = bytearray(pack(HEADER, b"a" * 8, b"b" * 8))
    data[len(MAGIC)] = 99
    with pytest.raises(BitstreamError, match="version 99"):
        unpack(bytes(data))


def test_header_validation():
    with pytest.raises(ValueError, match="variant"):
        Header("v", "m", 1, 1, 64, 64, 10)
    with pytest.raises(ValueError, match="sizes"):
        Header("x", "m", 65, 1, 64, 64, 10)
    with pytest.raises(ValueError, match="too long"):
        Header("x", "m" * 256, 1, 1, 64, 64, 10)
