"""Reading images into the one form codecs take (8-bit RGB), and the preprocessing protocols papers use."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")


class ImageReadError(Exception):
    """An image file could not be read (missing, unreadable, truncated)."""


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
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        notes.append(f"{source}: floating-point image rounded to 8-bit RGB")
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


def read_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read an image file as ``H x W x 3`` uint8 RGB plus the list of conversions made.

    Raises :class:`ImageReadError` for a missing, unreadable or truncated file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            image, notes = to_rgb8(img, path.name)
            if img.mode in ("RGB", "RGBA") and _looks_16bit(path):
                # Pillow reads 16-bit-per-channel PNGs as 8-bit by keeping the high byte; say so.
                notes.insert(0, f"{path.name}: 16-bit RGB converted to 8-bit")
            return image, notes
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from None


def _looks_16bit(path: Path) -> bool:
    """True for PNGs whose IHDR says 16 bits per sample (Pillow would otherwise read them as 8-bit)."""
    if path.suffix.lower() != ".png":
        return False
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
            raise ValueError(f"unknown preprocessing {text!r}; use none, center-crop:N or resize-crop:N")
        return cls(kind, int(size))

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.size}"

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return image
        if self.kind == "resize-crop":
            h, w = image.shape[:2]
            scale = self.size / min(h, w)
            new_w, new_h = max(self.size, round(w * scale)), max(self.size, round(h * scale))
            image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC, reducing_gap=None))
        return center_crop(image, self.size)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top:top + ch, left:left + cw])


def load_image(path: str | Path, preprocess: Preprocess | str | None = None) -> tuple[np.ndarray, list[str]]:
    """Read an image, convert it to 8-bit RGB and apply the preprocessing protocol."""
    pre = preprocess if isinstance(preprocess, Preprocess) else Preprocess.parse(preprocess)
    image, notes = read_image(path)
    return pre.apply(image), notes


def warn_conversions(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(note, stacklevel=2)


def save_png(image: np.ndarray, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(image).save(tmp)
    tmp.replace(path)
