"""Shared plumbing for codecs whose bitstream is an image file that Pillow (or a Pillow plug-in) writes and reads.

Adapters in :mod:`baselines.classical` only declare a format and the save arguments for one rate point; the
encode/decode round trip, the plug-in check and the error mapping live here once.
"""

from __future__ import annotations

import importlib
import io
import math
from typing import Any, ClassVar

import numpy as np

from cdc_bench.codecs.base import Availability, BitstreamError, Codec, CodecConfigError, RateDomain

#: What Pillow and its plug-ins raise on bytes they cannot parse (truncated, corrupt, another format).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, IndexError, KeyError)


def int_rate(codec: str, rate: Any, low: int, high: int, label: str) -> int:
    """Check that a rate point is an integer in ``[low, high]`` and return it as ``int``."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or not value.is_integer() or not low <= value <= high:
        raise CodecConfigError(f"{codec}: rate point {rate!r} is invalid; expected an integer {label} "
                               f"in {low}..{high}")
    return int(value)


def float_rate(codec: str, rate: Any, low: float, label: str) -> float:
    """Check that a rate point is a finite number greater than ``low``."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= low:
        raise CodecConfigError(f"{codec}: rate point {rate!r} is invalid; expected a {label} greater than {low:g}")
    return value


def check_decoded_size(codec: str, width: int, height: int) -> None:
    """Refuse, from the header alone, a size no input image can have (cdc-bench's input pixel limit, 64 Mpx by
    default): a flipped bit in a size field would otherwise decode gigabytes of pixels."""
    from cdc_bench.datasets.images import pixel_limit

    limit = pixel_limit()
    if width < 1 or height < 1 or (limit and width * height > limit):
        raise BitstreamError(f"{codec}: bitstream claims a {width}x{height} image, beyond the input pixel limit "
                             f"{limit} (corrupt size field?)")


def decode_with_pillow(data: bytes, pil_format: str, codec: str) -> np.ndarray:
    """Decode an image file held in ``data`` with Pillow; anything unreadable becomes :class:`BitstreamError`."""
    from PIL import Image

    if not data:
        raise BitstreamError(f"{codec}: empty bitstream")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != pil_format:
                raise BitstreamError(f"{codec}: bitstream is {img.format or 'unknown'}, not {pil_format}")
            check_decoded_size(codec, *img.size)
            img.load()
            rgb = img.convert("RGB") if img.mode != "RGB" else img
            out = np.asarray(rgb, dtype=np.uint8).copy()
    except BitstreamError:
        raise
    except DECODE_ERRORS as err:  # Image.UnidentifiedImageError is an OSError
        raise BitstreamError(f"{codec}: cannot decode {len(data)} bytes as {pil_format} "
                             f"(truncated or corrupt): {err}") from err
    return out


class PillowCodec(Codec):
    """A codec whose bitstream is the file Pillow writes for ``pil_format``; subclasses give ``save_args``.

    The rate point is an integer in :attr:`rate_range` unless a subclass overrides :meth:`validate_rate`.
    """

    #: Pillow's format name; decoding checks the bytes are of this format
    pil_format: ClassVar[str] = ""
    #: module whose import registers the format with Pillow (a plug-in), if any
    plugin: ClassVar[str | None] = None
    #: ``PIL.features`` name that must be present, if any
    feature: ClassVar[str | None] = None
    #: how to get the missing library
    install_fix: ClassVar[str] = "pip install --upgrade pillow"
    #: valid integer rate points (inclusive)
    rate_range: ClassVar[tuple[int, int]] = (0, 100)

    def save_args(self, rate: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        """Pillow ``Image.save`` keyword arguments for one validated rate point and image shape."""
        raise NotImplementedError

    def prepare(self, image: Any, rate: Any) -> Any:
        """The Pillow image to save (a codec that transforms before saving, e.g. quantises, overrides this)."""
        return image

    def rate_domain(self) -> RateDomain:
        return RateDomain("int", *self.rate_range)

    def validate_rate(self, rate: Any) -> Any:
        return int_rate(self.name, rate, *self.rate_range, self.rate_label.partition(" (")[0])

    @classmethod
    def availability(cls) -> Availability:
        try:
            if cls.plugin:
                importlib.import_module(cls.plugin)
            from PIL import Image, features

            Image.init()
        except ImportError as err:
            return Availability(False, f"{cls.name}: cannot import {cls.plugin or 'Pillow'} ({err})", cls.install_fix)
        if cls.feature and not features.check(cls.feature):
            return Availability(False, f"{cls.name}: this Pillow build has no {cls.feature} support", cls.install_fix)
        if cls.pil_format not in Image.SAVE:
            return Availability(False, f"{cls.name}: Pillow cannot write {cls.pil_format}", cls.install_fix)
        return Availability(True)

    def _encode(self, image: np.ndarray, rate: Any) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        # These formats carry width and height themselves and accept any size (1x1 included): no padding.
        self.prepare(Image.fromarray(np.ascontiguousarray(image)), rate).save(buf, format=self.pil_format,
                                                                               **self.save_args(rate, image.shape))
        return buf.getvalue()

    def _decode(self, data: bytes) -> np.ndarray:
        return decode_with_pillow(data, self.pil_format, self.name)
