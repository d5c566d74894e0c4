"""Reading images into the one form codecs take (8-bit RGB), and the preprocessing protocols papers use.

Every read is bounded: the pixel count is taken from the file's header and checked against a limit before any
pixel is decoded, so a small file that claims a huge size fails with its name instead of taking the worker's
memory. Anything the reader had to decide (frame 0 of an animation, an EXIF orientation left unapplied, a
conversion to 8-bit RGB) comes back as a note that the runner stores beside the row.
"""

from __future__ import annotations

import io

import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ..errors import ConfigError, ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp", ".gif")

# 64 Mpx of 8-bit RGB is 192 MB before a codec or metric makes its float copies; the usual test sets hold images of
# a few megapixels (DIV2K: 2040 px on the long side), so the default refuses only what is clearly not a photograph.
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "CDC_BENCH_MAX_PIXELS"
# How a user raises the limit; the CLI may add its own option and name it here too.
RAISE_LIMIT_HINT = f"raise it with {MAX_PIXELS_ENV}=N (0: no limit)"

_ORIENTATION_TAG = 0x0112
_ORIENTATIONS = {2: "mirrored left-right", 3: "rotated 180°", 4: "mirrored top-bottom", 5: "transposed",
                 6: "rotated 90° clockwise", 7: "transversed", 8: "rotated 90° counter-clockwise"}


__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "ImageOptionError", "ImageReadError", "InputWarning",
           "Preprocess", "center_crop", "load_image", "pixel_limit", "probe_image", "read_image", "resize_crop",
           "save_png", "to_rgb8"]


class ImageOptionError(ConfigError, ValueError):
    """A bad preprocessing protocol or pixel limit (a ValueError too, for callers that caught that before)."""


class InputWarning(UserWarning):
    """An input was used in a way the user may not expect (a dangling link listed, a file skipped)."""


def pixel_limit(limit: int | None = None) -> int | None:
    """The pixel limit in force: ``limit`` if given, else ``$CDC_BENCH_MAX_PIXELS``, else 64 Mpx; 0 means none."""
    if limit is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_PIXELS
        try:
            limit = int(text.replace("_", ""))
        except ValueError:
            raise ImageOptionError(f"{MAX_PIXELS_ENV}={text!r}: give a whole number of pixels (0: no limit)") from None
    if limit < 0:
        raise ImageOptionError(f"max_pixels must be >= 0 (0: no limit), got {limit}")
    return limit or None


def to_rgb8(img: Image.Image, source: str = "image") -> tuple[np.ndarray, list[str]]:
    """Convert any Pillow image to ``H x W x 3`` uint8, returning the conversions made as warnings."""
    notes: list[str] = []
    mode = img.mode
    if mode.startswith("I"):
        # 16-bit (or 32-bit integer) grey: scale the full range down to 8 bits rather than clipping.
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if arr.max() > 255 or mode.startswith("I;16") else 255.0
        arr = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        notes.append(f"{source}: {mode} (16-bit) converted to 8-bit RGB")
        return np.repeat(arr[..., None], 3, axis=2), notes
    if mode == "F":
        arr = np.asarray(img).astype(np.float64)
        if not np.isfinite(arr).all():
            raise ImageReadError(f"{source}: floating-point image with {int((~np.isfinite(arr)).sum())} NaN or "
                                 "infinite pixels; convert it to 8-bit first")
        low, high = float(arr.min()), float(arr.max())
        # read as 0..255, as Pillow's own F -> L conversion does; a [0, 1] image is not rescaled, so say its range
        notes.append(f"{source}: floating-point image (values {low:g}..{high:g}) read as 0..255, rounded"
                     + (", values outside 0..255 clipped" if low < 0 or high > 255 else "")
                     + (": it looks like a 0..1 image, which reads as nearly black" if high <= 1 else ""))
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2), notes
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        notes.append(f"{source}: alpha channel dropped ({mode} -> RGB)")
    elif mode in ("L", "1"):
        notes.append(f"{source}: grayscale converted to RGB")
    elif mode == "P":
        notes.append(f"{source}: palette image converted to RGB")
    elif mode not in ("RGB",):
        notes.append(f"{source}: {mode} converted to RGB")
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy(), notes


def read_image(path: str | Path, max_pixels: int | None = None, data: bytes | None = None
               ) -> tuple[np.ndarray, list[str]]:
    """Read an image file as ``H x W x 3`` uint8 RGB plus the list of notes on what was done to it.

    ``max_pixels`` bounds width x height, checked from the header before decoding (default: see
    :func:`pixel_limit`). Raises :class:`ImageReadError` naming the file for a missing, dangling-link,
    unreadable, truncated or too large file.
    """
    path = Path(path)
    limit = pixel_limit(max_pixels)
    try:
        image, notes = _read_image(path, limit, data)
    except ImageReadError as err:
        raise ImageReadError(printable(str(err))) from None
    return image, [printable(note) for note in notes]


def printable(text: str) -> str:
    """``text`` as valid UTF-8: bytes of a file name that are not UTF-8 written as ``\\xff`` (a row holding
    them could not be stored)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _read_image(path: Path, limit: int | None, data: bytes | None) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as said:  # Pillow's own warnings (corrupt EXIF) go into the row
        warnings.simplefilter("always")
        with _opened(path, limit, data) as img:
            if img.format == "PNG":
                _check_png_crcs(path, limit, data)
            img.load()
            notes = _frame_and_orientation_notes(img, path.name)
            image, converted = to_rgb8(img, path.name)
            if img.mode in ("RGB", "RGBA") and (_looks_16bit(path, data) or _tiff_bits(img) > 8):
                # Pillow reads 16-bit-per-channel PNGs and TIFFs as 8-bit by keeping the high byte; say so.
                converted.insert(0, f"{path.name}: 16-bit RGB converted to 8-bit")
    pillow = [f"{path.name}: {' '.join(str(w.message).split())}" for w in said
              if not issubclass(w.category, InputWarning)]
    for w in said:
        if issubclass(w.category, InputWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return image, converted + notes + pillow


def _check_png_crcs(path: Path, limit: int | None, data: bytes | None = None) -> None:
    """Pillow's decoder does not check the CRC of image data chunks; its ``verify()`` checks every chunk's."""
    try:
        with _pillow_limit(limit), Image.open(_source(path, data)) as img:
            img.verify()
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: corrupt PNG ({err})") from None


def probe_image(path: str | Path, max_pixels: int | None = None) -> list[str]:
    """Check a file from its header only (no pixel is decoded): the notes a read would add about frames and EXIF
    orientation, or :class:`ImageReadError` for what would fail early (dangling link, unreadable header, too
    large). Cheap enough to run over a whole dataset before a sweep starts."""
    path = Path(path)
    with _opened(path, pixel_limit(max_pixels)) as img:
        return _frame_and_orientation_notes(img, path.name)


@contextmanager
def _opened(path: Path, limit: int | None, data: bytes | None = None) -> Iterator[Image.Image]:
    """``Image.open`` with the size checked before anything is decoded, and every failure named."""
    if data is None and path.is_symlink() and not path.exists():
        raise ImageReadError(f"{path}: dangling symbolic link (its target {os.readlink(path)} does not exist)")
    source = _source(path, data)
    try:
        with _pillow_limit(limit), Image.open(source) as img:
            _check_size(path, img.size, limit)
            yield img
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except Image.DecompressionBombError as err:
        # Pillow refuses at twice the limit it was given (ours); report it exactly like our own check.
        found = re.search(r"\((\d+) pixels\)", str(err))
        raise ImageReadError(_too_large(path, int(found.group(1)) if found else None, limit)) from None
    except (OSError, SyntaxError, ValueError) as err:
        said = str(err).replace(repr(source), repr(str(path)))  # Pillow names shipped bytes by their object
        raise ImageReadError(f"{path}: cannot read image ({said})") from None


def _too_large(path: Path, pixels: int | None, limit: int | None) -> str:
    count = f"{pixels:,} px" if pixels is not None else "size"
    return f"{path}: too large ({count} > limit of {limit:,} px; {RAISE_LIMIT_HINT})"


def _check_size(path: Path, size: tuple[int, int], limit: int | None) -> None:
    pixels = size[0] * size[1]
    if limit is not None and pixels > limit:
        raise ImageReadError(_too_large(path, pixels, limit))


@contextmanager
def _pillow_limit(limit: int | None) -> Iterator[None]:
    """Pillow's own decompression-bomb guard set to our limit for the duration of one read.

    Pillow checks sizes in ``Image.open`` and while seeking GIF frames; its warning (between 1x and 2x the limit)
    is silenced because our check then raises, and its error (above 2x) is mapped to the same message.
    """
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _frame_and_orientation_notes(img: Image.Image, name: str) -> list[str]:
    """Say what was used when a file holds several frames or an EXIF orientation (which is not applied:
    CompressAI and clean-fid code and measure the pixels as stored)."""
    notes = []
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        notes.append(f"{name}: {frames} frames ({img.format}); only the first frame is used")
    try:
        orientation = img.getexif().get(_ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not make a readable image unreadable
        orientation = None
    if orientation in _ORIENTATIONS:
        notes.append(f"{name}: EXIF orientation {orientation} ({_ORIENTATIONS[orientation]} for display) ignored: "
                     "the pixels are used as stored, as CompressAI and clean-fid read them")
    profile = _icc_description(img)
    if profile is not None and "srgb" not in profile.lower():
        notes.append(f"{name}: embedded ICC profile {profile!r} ignored: the pixels are used as stored, not "
                     "converted to sRGB, as CompressAI and clean-fid read them")
    return notes


def _icc_description(img: Image.Image) -> str | None:
    """The description of an embedded ICC profile (``None`` without one); a profile littlecms cannot parse is
    still named, as unreadable, since its pixels are still not sRGB-converted."""
    icc = img.info.get("icc_profile")
    if not icc:
        return None
    try:
        from PIL import ImageCms

        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() or "unnamed"
    except Exception:  # noqa: BLE001 - ImageCms missing, or a damaged profile: the note must not fail the read
        return "unreadable"


def _tiff_bits(img: Image.Image) -> int:
    """The largest BitsPerSample of a TIFF (0 for other formats)."""
    bits = getattr(img, "tag_v2", {}).get(258) if img.format == "TIFF" else None
    values = bits if isinstance(bits, tuple) else (bits,) if isinstance(bits, int) else ()
    return max(values, default=0)


def _source(path: Path, data: bytes | None) -> Path | io.BytesIO:
    """What Pillow opens: the file, or the file's bytes shipped to a worker (named by ``path`` in messages)."""
    return path if data is None else io.BytesIO(data)


def _looks_16bit(path: Path, data: bytes | None = None) -> bool:
    """True for PNGs whose IHDR says 16 bits per sample (Pillow would otherwise read them as 8-bit)."""
    if path.suffix.lower() != ".png":
        return False
    if data is not None:
        head = data[:26]
    else:
        with open(path, "rb") as f:
            head = f.read(26)
    return len(head) >= 25 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16


# --- preprocessing --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preprocess:
    """How images are prepared before coding: ``none``, ``center-crop:N`` or ``resize-crop:N``.

    ``resize-crop:768`` resizes the shorter side to 768 (bicubic, antialiased) and centre-crops to 768x768:
    CDC's DIV2K protocol. ``center-crop:N`` takes the central N x N (or as much as the image has).
    """

    kind: str = "none"
    size: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "Preprocess":
        text = (text or "none").strip().lower()
        if text in ("none", "as-is", ""):
            return cls()
        kind, _, size = text.partition(":")
        if kind not in ("center-crop", "resize-crop") or not size.isdigit() or int(size) < 1:
            raise ImageOptionError(f"unknown preprocessing {text!r}; use none, center-crop:N or resize-crop:N")
        limit = pixel_limit()
        if kind == "resize-crop" and limit and int(size) ** 2 > limit:  # it makes N x N pixels from any input
            raise ImageOptionError(f"{text!r} makes {int(size)}x{int(size)} = {int(size) ** 2:,} pixels per image, above "
                                   f"the pixel limit of {limit:,} (${MAX_PIXELS_ENV}; 0: no limit)")
        return cls(kind, int(size))

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.size}"

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return image
        if self.kind == "resize-crop":
            return resize_crop(image, self.size, self.size)
        return center_crop(image, self.size)


def center_crop(image: np.ndarray, size: int, height: int | None = None) -> np.ndarray:
    """The central ``size x size`` (or ``size`` wide, ``height`` high) region, or as much as the image has."""
    h, w = image.shape[:2]
    ch, cw = min(size if height is None else height, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top:top + ch, left:left + cw])


def resize_crop(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize (bicubic, antialiased) so the image covers ``width x height``, then centre-crop to exactly that.

    With a square target this is CDC's DIV2K protocol (shorter side to N, central N x N).
    """
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    if (new_w, new_h) != (w, h):
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC, reducing_gap=None))
    return center_crop(image, width, height)


def load_image(path: str | Path, preprocess: Preprocess | str | None = None,
               max_pixels: int | None = None, data: bytes | None = None) -> tuple[np.ndarray, list[str]]:
    """Read an image, convert it to 8-bit RGB and apply the preprocessing protocol (see :func:`read_image`).

    ``data``: the file's bytes, read instead of ``path`` (which still names it in every message and note), for a
    worker that was sent the bytes rather than a path it may not see.
    """
    pre = preprocess if isinstance(preprocess, Preprocess) else Preprocess.parse(preprocess)
    image, notes = read_image(path, max_pixels, data)
    return pre.apply(image), notes


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write a PNG through a temporary name, so a killed write never leaves a half file under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(image).save(tmp)
    tmp.replace(path)
