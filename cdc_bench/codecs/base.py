"""The codec interface every codec in cdc-bench implements.

A codec turns one 8-bit RGB image (``H x W x 3`` ``uint8`` numpy array) into bytes at a rate point, and turns
those bytes back into an image. The decoder sees only the bytes and the codec's configuration (its options),
never the original image or the rate point: whatever it needs must be in the bitstream.

As in CompressAI's bench codecs (``run`` / ``_run_impl``), the base class does the shared work: the public
:meth:`Codec.encode` and :meth:`Codec.decode` check the image, the codec's availability and the rate point, and
map every unexpected exception to a :class:`CodecError`. An adapter declares its options once as :class:`Option`
and implements only :meth:`Codec._encode` and :meth:`Codec._decode`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..errors import (BitstreamError, CdcBenchError, CodecConfigError, CodecError,  # noqa: F401 - re-exported
                     CodecUnavailable)
from .rates import Rate, RateDomain  # noqa: F401 - re-exported


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    fix: str = ""


def parse_value(text: Any, default: Any) -> Any:
    """Convert an option given as text on the command line to the type of its default.

    Raises ``ValueError`` for text of the wrong type and for NaN or infinite numbers (they would make the
    stored options key invalid JSON and compare unequal to themselves).
    """
    if not isinstance(text, str):
        value = text
    elif isinstance(default, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    elif isinstance(default, int):
        value = int(text)
    elif isinstance(default, float):
        value = float(text)
    elif isinstance(default, (list, tuple)):
        return [parse_value(t.strip(), default[0] if default else "") for t in text.split(",") if t.strip()]
    elif default is None:
        value = text
        for cast in (int, float):  # no type to follow: keep numbers as numbers, everything else as text
            try:
                value = cast(text)
                break
            except ValueError:
                pass
    else:
        value = text
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


@dataclass(frozen=True)
class Option:
    """One codec option, declared once: its default (whose type is the option's type), help, and valid values."""

    default: Any
    help: str = ""
    choices: tuple | None = None
    range: tuple[float | None, float | None] | None = None  # inclusive bounds; None for an open side
    #: older words accepted for a choice and stored as the current one (``released`` -> ``pretrained``)
    aliases: Mapping[str, Any] | None = None

    def parse(self, codec: str, key: str, value: Any) -> Any:
        """The option's value from text or a Python value; raises :class:`CodecConfigError` naming what is valid."""
        if self.aliases and isinstance(value, str) and value.strip() in self.aliases:
            value = self.aliases[value.strip()]
        try:
            parsed = parse_value(value, self.default)
        except (TypeError, ValueError) as err:
            raise CodecConfigError(f"option {codec}.{key}={value!r}: {err}; {self.describe()}") from None
        if self.choices is not None and parsed not in self.choices and str(parsed) not in map(str, self.choices):
            raise CodecConfigError(f"option {codec}.{key}={value!r} is not valid; {self.describe()}")
        if self.choices is not None and parsed not in self.choices:
            parsed = next(c for c in self.choices if str(c) == str(parsed))
        if self.range is not None:
            low, high = self.range
            if not isinstance(parsed, (int, float)) or isinstance(parsed, bool) \
                    or (low is not None and parsed < low) or (high is not None and parsed > high):
                raise CodecConfigError(f"option {codec}.{key}={value!r} is out of range; {self.describe()}")
        return parsed

    def describe(self) -> str:
        """What values are valid, in words (for errors and ``cdc-bench codecs``)."""
        if self.choices is not None:
            return "choose one of " + ", ".join(map(str, self.choices))
        if self.range is not None:
            low, high = (_number(v) for v in self.range)
            kind = "an integer" if isinstance(self.default, int) and not isinstance(self.default, bool) else "a number"
            if low is not None and high is not None:
                return f"expected {kind} in {low}..{high}"
            return f"expected {kind} {'>= ' + low if low is not None else '<= ' + high}"
        if isinstance(self.default, bool):
            return "expected true or false"
        return f"expected a value like {self.default!r}"


def _number(value: float | None) -> str | None:
    """A bound as people write it: ``8193``, ``0.5`` (never ``9.22337e+18`` for an integer)."""
    if value is None:
        return None
    return str(value) if isinstance(value, int) else format(value, "g")


@dataclass(frozen=True)
class Encoded:
    """What an encoder produced: the bitstream, plus what the runner records beside it."""

    data: bytes
    #: likelihood-estimated bits (learned codecs); reported beside the real rate, never instead of it
    estimated_bits: float | None = None
    #: numbers to store beside the row (e.g. ``{"steps": 65}``)
    info: dict[str, Any] = field(default_factory=dict)


def canonical_options(options: Mapping[str, Any]) -> str:
    """A stable text form of a codec's options: part of the key under which results are stored."""
    return json.dumps(dict(sorted(options.items())), sort_keys=True, separators=(",", ":"), default=str,
                      allow_nan=False)


class Codec:
    """Base class of all codecs. Subclasses set the class attributes and implement ``_encode``/``_decode``."""

    #: registry name, e.g. ``"jpeg"``
    name: ClassVar[str] = ""
    #: how figure legends name the codec (default: ``name``); tables keep ``name`` as the key.
    #: E.g. ``hevc`` is "x265 with BPG's settings (HEIF)", what its curve shows
    display_name: ClassVar[str] = ""
    #: one line shown by ``cdc-bench codecs``
    description: ClassVar[str] = ""
    #: the rate knob, declared once (:class:`~cdc_bench.codecs.rates.Rate`); ``rate_points`` and ``rate_label``
    #: are derived from it
    rate: ClassVar[Rate | None] = None
    #: what the rate point means, e.g. ``"quality (0-100)"``, ``"QP"``, ``"lambda"`` (derived from ``rate``)
    rate_label: ClassVar[str] = "quality"
    #: the default rate points, low rate first where that is natural (derived from ``rate``)
    rate_points: ClassVar[tuple[Any, ...]] = ()
    #: options under which the codec runs here cheaply and offline (random weights, few steps): what the fuzz
    #: test and the end-to-end tests use; ``None`` when it cannot run without files a user must fetch
    smoke_options: ClassVar[dict[str, str] | None] = {}
    #: option name -> declaration
    option_specs: ClassVar[dict[str, Option]] = {}
    #: a fixed description of what the codec does (library, flags); shown in ``cdc-bench codecs --details``
    details: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("display_name"):   # each class its own: a subclass never shows its parent's
            cls.display_name = cls.name
        if "rate" in cls.__dict__ and cls.rate is not None:
            cls.rate_points = cls.rate.points
            cls.rate_label = cls.rate.title()

    def __init__(self, options: Mapping[str, Any] | None = None, device: str = "cpu"):
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.option_specs))
        if unknown:
            valid = ", ".join(sorted(self.option_specs)) or "none"
            raise CodecConfigError(f"codec {self.name!r} has no option {', '.join(unknown)}; valid options: {valid}")
        self.options: dict[str, Any] = {key: spec.default for key, spec in self.option_specs.items()}
        for key, value in options.items():
            self.options[key] = self.option_specs[key].parse(self.name, key, value)
        self.device = device
        self.check_options()

    # -- to implement -------------------------------------------------------------------------------------
    def _encode(self, image: np.ndarray, rate: Any) -> Encoded | bytes:
        """Compress a checked ``H x W x 3`` uint8 image at a validated rate point into a self-contained bitstream."""
        raise NotImplementedError

    def _decode(self, data: bytes) -> np.ndarray:
        """Reconstruct the ``H x W x 3`` uint8 RGB image from the bytes alone."""
        raise NotImplementedError

    def _decode_batch(self, datas: Sequence[bytes]) -> list[np.ndarray]:
        """Decode several bitstreams; override where batching is faster (same results as one at a time)."""
        return [self._decode(data) for data in datas]

    # -- optional hooks -----------------------------------------------------------------------------------
    @classmethod
    def availability(cls) -> Availability:
        """Whether this codec can run here, and if not, why and how to fix it."""
        return Availability(True)

    def check_options(self) -> None:
        """Raise :class:`CodecConfigError` for combinations of option values that make no sense."""

    def check_rate(self, rate: Any) -> Any:
        """Refuse (:class:`CodecConfigError`) a rate point the declared knob admits but these options do not
        (a lambda with no released checkpoint); return it, possibly in its canonical form. Default: as it is."""
        return rate

    def validate_rate(self, rate: Any, error: type[CodecError] = CodecConfigError) -> Any:
        """One rate point in the codec's own type, or ``error`` naming the valid values (from :attr:`rate`).

        Called for every rate point before a sweep starts, so a bad one fails at once, not item by item, and by
        decoders on a rate field read from a bitstream (``error=BitstreamError``). A codec that declares no
        :attr:`rate` (an older plug-in) has text converted to the type of its default rate points.
        """
        if self.rate is not None:
            value = self.rate.parse(rate, self.name, error)
            try:
                return self.check_rate(value)
            except CodecConfigError as err:
                raise error(str(err)) from None
        like = self.rate_points[0] if self.rate_points else None
        try:
            return parse_value(rate, like)
        except (TypeError, ValueError) as err:
            raise error(f"{self.name}: rate point {rate!r}: {err}") from None

    def rate_domain(self) -> RateDomain:
        """How :mod:`cdc_bench.codecs.matching` may search the rate knob (from :attr:`rate`; else the points)."""
        if self.rate is not None:
            return self.rate.domain()
        return RateDomain("points", points=tuple(self.rate_points))

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        """Names (in :mod:`cdc_bench.weights`) of the weight files these rate points need, checked before a sweep."""
        return []

    # -- the shared work ----------------------------------------------------------------------------------
    def require_available(self) -> None:
        status = type(self).availability()
        if not status.ok:
            raise CodecUnavailable(status.reason, status.fix)

    def encode(self, image: np.ndarray, rate: Any) -> Encoded:
        """Compress an image at one rate point. Raises :class:`CodecError` (never another exception type)."""
        check_image(image)
        self.require_available()
        rate = self.validate_rate(rate)
        try:
            out = self._encode(image, rate)
        except CdcBenchError:
            raise
        except Exception as err:  # noqa: BLE001 - a library's own error, named for the user
            raise CodecError(f"{self.name}: encode failed: {type(err).__name__}: {err}") from err
        encoded = out if isinstance(out, Encoded) else Encoded(out)
        if not isinstance(encoded.data, (bytes, bytearray)) or not encoded.data:
            raise CodecError(f"{self.name}: the encoder returned {type(encoded.data).__name__} of length "
                             f"{len(encoded.data) if hasattr(encoded.data, '__len__') else '?'}; expected bytes")
        return encoded if isinstance(encoded.data, bytes) else Encoded(bytes(encoded.data), encoded.estimated_bits,
                                                                        encoded.info)

    def decode(self, data: bytes) -> np.ndarray:
        """Reconstruct an image from its bytes. Raises :class:`BitstreamError` on bytes it cannot decode."""
        return self.decode_batch([data])[0]

    def decode_batch(self, datas: Sequence[bytes]) -> list[np.ndarray]:
        """Decode several bitstreams (a codec may batch them); each result is checked like :meth:`decode`'s."""
        self.require_available()
        datas = [bytes(d) if isinstance(d, (bytes, bytearray, memoryview)) else d for d in datas]
        for data in datas:
            if not isinstance(data, bytes) or not data:
                raise BitstreamError(f"{self.name}: empty or non-bytes bitstream")
        try:
            images = self._decode_batch(datas) if len(datas) > 1 else [self._decode(datas[0])]
        except CdcBenchError:
            raise
        except Exception as err:  # noqa: BLE001 - incl. MemoryError: bytes that claim an absurd size
            raise BitstreamError(f"{self.name}: cannot decode the bitstream: {type(err).__name__}: {err}") from err
        for image in images:
            try:
                check_image(image)
            except CodecError as err:
                raise BitstreamError(f"{self.name}: the decoder returned an invalid image: {err}") from None
        return images

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
