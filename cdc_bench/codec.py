"""The codec interface every codec in cdc-bench implements.

A codec turns one 8-bit RGB image (``H x W x 3`` ``uint8`` numpy array) into bytes at a rate point, and turns
those bytes back into an image. The decoder sees only the bytes and the codec's configuration (its options),
never the original image or the rate point: whatever it needs must be in the bitstream.

Adapters subclass :class:`Codec` and implement only :meth:`Codec.encode` and :meth:`Codec.decode`; the runner
does the timing, bpp and metrics. Options are declared as class-level defaults in :attr:`Codec.settings` and
can be set from the command line as ``-o NAME.KEY=VALUE``; every result row records them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np


class CodecError(Exception):
    """An encode or decode failed for a reason the user can act on (bad bitstream, bad option...)."""


class CodecUnavailable(CodecError):
    """The codec cannot run on this machine; ``fix`` says what to install or download."""

    def __init__(self, reason: str, fix: str = ""):
        super().__init__(reason + (f" Fix: {fix}" if fix else ""))
        self.reason = reason
        self.fix = fix


class BitstreamError(CodecError):
    """The bytes handed to a decoder are truncated, corrupted or not from this codec."""


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    fix: str = ""


def parse_value(text: str, default: Any) -> Any:
    """Convert an option given as text on the command line to the type of its default."""
    if not isinstance(text, str):
        return text
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, (list, tuple)):
        return [parse_value(t, default[0] if default else "") for t in text.split(",") if t.strip()]
    if default is None:
        # No type to follow: keep numbers as numbers, everything else as text.
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
    return text


def parse_rate_points(text: str | Sequence[Any], like: Sequence[Any]) -> list[Any]:
    """Parse ``"10,50,90"`` into rate points of the same type as the codec's defaults."""
    items = text.split(",") if isinstance(text, str) else list(text)
    template = like[0] if like else 0.0
    return [parse_value(str(item).strip(), template) for item in items if str(item).strip()]


def canonical_options(options: Mapping[str, Any]) -> str:
    """A stable text form of a codec's options: the key under which results are stored."""
    return json.dumps(dict(sorted(options.items())), sort_keys=True, separators=(",", ":"), default=str)


class Codec:
    """Base class of all codecs. Subclasses set the class attributes and implement encode/decode."""

    #: registry name, e.g. ``"jpeg"``
    name: ClassVar[str] = ""
    #: one line shown by ``cdc-bench codecs``
    description: ClassVar[str] = ""
    #: what the rate point means, e.g. ``"quality (0-100)"``, ``"QP"``, ``"lambda"``
    rate_label: ClassVar[str] = "quality"
    #: the default rate points, low rate first where that is natural
    rate_points: ClassVar[tuple[Any, ...]] = ()
    #: option name -> default value (the type of the default is the option's type)
    settings: ClassVar[dict[str, Any]] = {}
    #: option name -> one-line help
    settings_help: ClassVar[dict[str, str]] = {}
    #: a fixed description of what the codec does (library, flags); shown in ``cdc-bench codecs``
    details: ClassVar[str] = ""

    def __init__(self, options: Mapping[str, Any] | None = None, device: str = "cpu"):
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.settings))
        if unknown:
            valid = ", ".join(sorted(self.settings)) or "none"
            raise CodecError(f"codec {self.name!r} has no option {', '.join(unknown)}; valid options: {valid}")
        self.options: dict[str, Any] = dict(self.settings)
        for key, value in options.items():
            try:
                self.options[key] = parse_value(value, self.settings[key])
            except ValueError as err:
                raise CodecError(f"option {self.name}.{key}: {err}") from None
        self.device = device
        self.validate_options()

    # -- to implement -------------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: Any) -> bytes:
        """Compress an ``H x W x 3`` uint8 RGB image at one rate point into a self-contained bitstream."""
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        """Reconstruct the ``H x W x 3`` uint8 RGB image from the bytes alone."""
        raise NotImplementedError

    # -- optional hooks -----------------------------------------------------------------------------------
    @classmethod
    def availability(cls) -> Availability:
        """Whether this codec can run here, and if not, why and how to fix it."""
        return Availability(True)

    def validate_options(self) -> None:
        """Raise :class:`CodecError` for option values that make no sense."""

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        """Names (in :mod:`cdc_bench.weights`) of the weight files these rate points need, checked before a sweep."""
        return []

    def estimated_bits(self) -> float | None:
        """Likelihood-estimated bits of the last :meth:`encode`, for learned codecs; ``None`` otherwise."""
        return None

    def extra_metrics(self) -> dict[str, Any]:
        """Codec-specific numbers of the last encode/decode to store beside the result (e.g. steps used)."""
        return {}

    # -- shared helpers -----------------------------------------------------------------------------------
    @property
    def options_key(self) -> str:
        return canonical_options(self.options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options_key})"


def check_image(image: np.ndarray) -> np.ndarray:
    """Check that ``image`` is what codecs accept: ``H x W x 3`` uint8, non-empty."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise CodecError(f"codecs take H x W x 3 uint8 RGB images, got {got}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise CodecError(f"empty image of shape {image.shape}")
    return image


def pad_to_multiple(image: np.ndarray, multiple: int, minimum: int = 0) -> np.ndarray:
    """Pad an H x W x C image at the bottom and right by edge replication to a multiple of ``multiple``.

    Replication (not zeros) keeps the padded border cheap to code and free of ringing into the image.
    """
    h, w = image.shape[:2]
    new_h = max(-(-h // multiple) * multiple, minimum)
    new_w = max(-(-w // multiple) * multiple, minimum)
    if (new_h, new_w) == (h, w):
        return image
    return np.pad(image, ((0, new_h - h), (0, new_w - w), (0, 0)), mode="edge")
