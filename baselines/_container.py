"""What the learned baselines (CompressAI zoo, MS-ILLM/No-GAN) share: the bitstream container, its checks, and
the torch.hub weight cache.

A bitstream is ``magic | version | codec fields | varint sizes | CompressAI strings``. Decoders treat the bytes
as untrusted: every header field is checked against what the codec's configuration allows (model, weights,
quality, image size within ``max_pixels``, latent shape equal to the one the declared size implies, string count
and lengths) **before** any tensor is built or any native code runs, and each rANS string is handed to
CompressAI's decoder with a zero tail (see :func:`rans_guard`) because that decoder reads without bounds checks.
Decoding never downloads: missing weights are a :class:`~cdc_bench.errors.WeightsMissing` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from cdc_bench.codecs.base import Availability, BitstreamError, Codec, CodecError, Option
from cdc_bench.download import DownloadError, offline_message
from cdc_bench.weights import WeightFile, get_weight

#: Seed of random-weights models, so an encoder and a decoder in another process build the same network.
RANDOM_SEED = 0
#: Default largest image a learned codec encodes or accepts from a header (a 4K UHD frame, 3840 x 2160, fits);
#: bigger sizes take minutes and many GB on these networks, so a header claiming more is rejected unread.
MAX_PIXELS = 1 << 23


# -- the container -----------------------------------------------------------------------------------------------
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
    """Reads a header from bytes; a read past the end or a value out of bounds is a :class:`BitstreamError`."""

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

    def varint(self, field: str, low: int = 0, high: int | None = None) -> int:
        """One varint, which must lie in ``low..high`` (checked before the caller can use it)."""
        value = shift = 0
        while True:
            byte = self.byte(field)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise BitstreamError(f"{self.what} bitstream is corrupt (runaway {field})")
        if value < low or (high is not None and value > high):
            raise BitstreamError(f"{self.what} bitstream is corrupt ({field} {value} is outside "
                                 f"{low}..{'' if high is None else high})")
        return value

    def done(self) -> None:
        if self.pos != len(self.data):
            raise BitstreamError(f"{self.what} bitstream has {len(self.data) - self.pos} unexpected trailing bytes")


def read_magic(reader: Reader, magic: bytes, version: int, family: str) -> None:
    """Check the magic bytes and the format version, the first thing every decoder reads."""
    if reader.take(len(magic), "magic") != magic:
        raise BitstreamError(f"not a {family} bitstream (bad magic) for {reader.what}")
    found = reader.byte("version")
    if found != version:
        raise BitstreamError(f"{reader.what}: bitstream format version {found}, this decoder reads {version}")


def pack_strings(groups: Sequence[Sequence[bytes]]) -> bytes:
    """CompressAI's ``strings`` (one list per entropy model, one string per batch item) with their lengths."""
    out = bytearray(write_varint(len(groups)))
    for group in groups:
        if len(group) != 1:
            raise CodecError(f"expected one string per entropy model (batch of 1), got {len(group)}")
        out += write_varint(len(group[0])) + group[0]
    return bytes(out)


def unpack_strings(reader: Reader, count: int | None = None) -> list[list[bytes]]:
    """The strings of :func:`pack_strings`; ``count`` is the number the codec's model must have."""
    found = reader.varint("number of strings", 0, 16)
    if count is not None and found != count:
        raise BitstreamError(f"{reader.what} bitstream is corrupt ({found} strings; this model codes {count})")
    # take() checks a length against the bytes left before it copies anything: a huge length is "truncated".
    return [[reader.take(reader.varint(f"length of string {i}"), f"string {i}")] for i in range(found)]


def rans_guard(strings: list[list[bytes]], symbols: int, what: str) -> list[list[bytes]]:
    """Check CompressAI rANS strings and give each a zero tail its decoder may read into.

    CompressAI's ``RansDecoder`` reads 32-bit words from the string without bounds checks: a corrupt string makes
    it read past the end (a segfault once that leaves mapped memory), an empty one reads 8 bytes at once. Its
    encoder always writes whole words and at least the 8-byte final state, so shorter strings or lengths that are
    not a multiple of 4 are corrupt. Past the real bytes a decoded symbol consumes at most 16 bits of state (one
    word read per two symbols), escape (bypass) runs set up by the string's own bits read at most ~15 bytes per
    byte of string, and escape runs starting in the zero tail end within one word. So a tail of
    ``4 * symbols + 16 * len + 1 KiB`` zeros keeps the reads inside memory we own (the fuzz test exercises it);
    a valid stream never reaches the tail (the decoder consumes exactly the encoder's words), so its decoding is
    unchanged.
    """
    guarded = []
    for i, group in enumerate(strings):
        for s in group:
            if len(s) < 8 or len(s) % 4:
                raise BitstreamError(f"{what} bitstream is corrupt (string {i} has {len(s)} bytes; the range coder "
                                     "writes whole 32-bit words, at least two)")
        guarded.append([s + bytes(4 * symbols + 16 * len(s) + 1024) for s in group])
    return guarded


# -- weights in torch.hub's cache --------------------------------------------------------------------------------
def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), where CompressAI's own loader puts files."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_path(filename: str) -> Callable[[], Path]:
    """A weight file's place in torch.hub's cache, resolved at each use (``TORCH_HOME`` may be set after import)."""
    return lambda: torch_hub_checkpoints() / filename


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


# -- the shared codec base ---------------------------------------------------------------------------------------
WEIGHTS_OPTION = Option("pretrained", "pretrained (published weights) or random (seeded random init, for tests; "
                                      "numbers are meaningless)", choices=("pretrained", "random"))
MAX_PIXELS_OPTION = Option(MAX_PIXELS, "largest image (H x W pixels) to encode, or to accept from a bitstream "
                                       "header before decoding it", range=(1, None))


class LearnedCodec(Codec):
    """A codec running a CompressAI-based network: one network kept loaded, weights never fetched by a decoder."""

    def __init__(self, options: dict[str, Any] | None = None, device: str = "cpu"):
        super().__init__(options, device)
        self._loaded: tuple[Any, Any] | None = None  # (key, network): the model cache, not per-call state

    @classmethod
    def availability(cls) -> Availability:
        try:
            import compressai  # noqa: F401
        except ImportError as err:
            return Availability(False, f"compressai cannot be imported ({err})", 'pip install "compressai==1.2.8"')
        return Availability(True)

    def check_size(self, h: int, w: int, error: type[CodecError] = BitstreamError) -> None:
        """Refuse sizes beyond ``max_pixels`` (a corrupt or hostile header must not allocate gigabytes)."""
        if h < 1 or w < 1 or h * w > self.options["max_pixels"]:
            raise error(f"{self.name}: image size {h}x{w} is {'invalid' if min(h, w) < 1 else 'too large'} "
                        f"(max_pixels={self.options['max_pixels']}; raise it with "
                        f"-o {self.name}.max_pixels=N)")

    def check_flag(self, option: str, found: str) -> None:
        """A header flag must equal this decoder's option: the same bytes under other weights decode to garbage."""
        if found != self.options[option]:
            raise BitstreamError(f"{self.name}: bitstream was made with {option}={found}, decoder has "
                                 f"{option}={self.options[option]}")

    def cached_model(self, key: Any, build: Callable[[], Any]):
        """The network for ``key``, built by ``build`` when another one is loaded (which is freed first)."""
        if self._loaded is not None and self._loaded[0] == key:
            return self._loaded[1]
        self._loaded = None
        net = build().eval().to(self.device)
        self._loaded = (key, net)
        return net


def seeded(build: Callable[[], Any]):
    """A random-weights network that a decoder in another process rebuilds identically, CDF tables included."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        net = build()
    net.update(force=True)
    return net


def weight_path(name: str, decoding: bool) -> Path:
    """A weight file's path; a decoder never downloads (the sweep's pre-check or ``cdc-bench weights`` does)."""
    return get_weight(name).ensure(allow_download=not decoding)
