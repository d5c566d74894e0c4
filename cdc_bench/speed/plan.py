"""What a speed run measures: its configuration, the image, and the codec for each step count.

``Plan`` turns a :class:`SpeedConfig` into codecs: it reads the codec's options (a ``steps`` option makes the
run sweep step counts; a ``weights`` option lets a missing checkpoint fall back to random weights, said in the
report), picks the rate point and builds one codec per step count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..codecs.base import Codec, CodecError, CodecUnavailable
from ..codecs.registry import get_codec_class
from ..errors import CdcBenchError, UnknownNameError
from ..datasets.images import MAX_PIXELS_ENV, pixel_limit

STEPS_OPTION = "steps"
WEIGHTS_OPTION = "weights"
RANDOM_WEIGHTS = "random"
MEMORY_METHOD = ("CPU: peak process RSS sampled every 5 ms by a psutil thread during the timed calls "
                 "(a lower bound; ru_maxrss is lifetime-wide, tracemalloc misses torch buffers); "
                 "CUDA: torch.cuda.max_memory_allocated")
RANDOM_NOTE = ("random weights: the released architecture with randomly initialised parameters; timings are "
               "representative, reconstructions and bpp are not")


class SpeedError(CdcBenchError):
    """The benchmark cannot run as asked (bad size, codec unavailable, decode failed...); the message says why.
    Exit status 2 ("could not measure"), told apart from a regression (1)."""

    exit_code = 2


@dataclass
class SpeedConfig:
    codec: str
    options: dict[str, Any] = field(default_factory=dict)
    steps: list[int] | None = None          # None: the codec's own steps setting (one point)
    sizes: list[tuple[int, int]] = field(default_factory=lambda: [(256, 256)])  # (width, height)
    repeats: int = 5
    warmup: int = 1
    device: str = "cpu"
    threads: int | None = None
    rate: Any = None                        # None: the middle of the codec's rate points
    image: str | Path | None = None         # None: a deterministic synthetic image


def parse_size(text: str) -> tuple[int, int]:
    """``"768x512"`` -> ``(768, 512)`` (width x height)."""
    w, sep, h = text.strip().lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 768x512)")
    limit = pixel_limit()   # the synthetic image is made at this size: a typo must not take the machine's memory
    if limit is not None and int(w) * int(h) > limit:
        raise ValueError(f"size {text!r} is {int(w) * int(h):,} pixels, over the input pixel limit of {limit:,} "
                         f"(raise it with {MAX_PIXELS_ENV}=N, 0: no limit)")
    return int(w), int(h)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [parse_size(part) for part in text.split(",") if part.strip()]


def parse_steps(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; each a positive integer, no repeats."""
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"steps {text!r} must be comma-separated positive integers (e.g. 1,2,4,8)") from None
    if not steps or any(s < 1 for s in steps):
        raise ValueError(f"steps {text!r} must be comma-separated positive integers (e.g. 1,2,4,8)")
    if len(set(steps)) != len(steps):
        raise ValueError(f"steps {text!r} repeat a value")
    return steps


def synthetic_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic image with smooth regions, edges and fine noise, so content-adaptive codecs do real work
    and runs on different days code the same pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float64)
    blocks = rng.integers(0, 256, size=(max(2, height // 96), max(2, width // 96), 3), dtype=np.uint8)
    edges = np.asarray(Image.fromarray(blocks).resize((width, height), Image.NEAREST), dtype=np.float64)
    noise = rng.normal(0.0, 4.0, size=(height, width, 3))
    return np.clip(0.6 * smooth + 0.4 * edges + noise, 0, 255).round().astype(np.uint8)


def image_at(path: str | Path, width: int, height: int) -> np.ndarray:
    """A real image resized to cover ``width x height`` (bicubic) and centre-cropped to it."""
    from ..datasets.images import read_image, resize_crop

    return resize_crop(read_image(path)[0], width, height)


def option_defaults(cls: type[Codec]) -> dict[str, Any]:
    """A codec class's options and their defaults (``option_specs`` of the codec base, or the older
    ``settings``)."""
    specs = getattr(cls, "option_specs", None)
    if specs:
        return {key: spec.default for key, spec in specs.items()}
    return dict(getattr(cls, "settings", {}) or {})


def json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def codec_dtype(codec: Codec) -> str:
    for key in ("dtype", "precision"):
        if codec.options.get(key):
            return str(codec.options[key])
    import torch

    return str(torch.get_default_dtype()).removeprefix("torch.")


class Plan:
    """The codec class, its base options and the step counts; switches to random weights when it must."""

    def __init__(self, config: SpeedConfig, notes: list[str]):
        self.config = config
        self.notes = notes
        try:
            self.cls = get_codec_class(config.codec)
        except UnknownNameError:
            raise
        except Exception as err:  # noqa: BLE001 - an entry point whose module or dependency is missing
            raise SpeedError(f"codec {config.codec} cannot be loaded ({type(err).__name__}: {err}); "
                             "install what it needs (see `cdc-bench codecs`)") from None
        self.options = dict(config.options)
        self.defaults = option_defaults(self.cls)
        self.has_steps = STEPS_OPTION in self.defaults
        user_set_weights = WEIGHTS_OPTION in self.options
        self.can_fall_back = WEIGHTS_OPTION in self.defaults and not user_set_weights
        avail = self.cls.availability()
        if not avail.ok:
            if not self.can_fall_back:
                raise SpeedError(f"codec {config.codec} is unavailable: {avail.reason}"
                                 + (f" Fix: {avail.fix}" if avail.fix else ""))
            self.use_random_weights(avail.reason)
        self.steps: list[int | None] = self._steps()
        self.last_codec: Codec | None = None

    def check_weights(self, rate: Any) -> None:
        """Switch to random weights, without trying a download, when the released ones are not on disk.

        Codecs that declare ``required_weights(rate_points)`` (CDC) say which weight files a rate point needs.
        """
        if not self.can_fall_back or not hasattr(self.cls, "required_weights"):
            return
        from ..weights import get_weight

        try:
            names = self.cls(self.options, device=self.config.device).required_weights([rate])
        except Exception:  # noqa: BLE001 - a wrong option is reported when the codec is built for real
            return
        missing = [get_weight(n) for n in names if not get_weight(n).present()]
        if missing:
            self.use_random_weights("; ".join(f"{w.name} not found at {w.path}" for w in missing))

    def _steps(self) -> list[int | None]:
        cfg = self.config
        if not self.has_steps:
            if cfg.steps:
                self.notes.append(f"codec {cfg.codec} has no '{STEPS_OPTION}' option: one point per size measured")
            return [None]
        if cfg.steps:
            if STEPS_OPTION in self.options:
                raise SpeedError(f"steps given twice: --steps and -o {cfg.codec}.{STEPS_OPTION}; keep one")
            return list(cfg.steps)
        return [int(self.options.get(STEPS_OPTION, self.defaults[STEPS_OPTION]))]

    def use_random_weights(self, reason: str) -> None:
        self.options[WEIGHTS_OPTION] = RANDOM_WEIGHTS
        self.can_fall_back = False
        self.notes.append(f"checkpoint unavailable ({reason.strip()}); measuring with "
                          f"-o {self.config.codec}.{WEIGHTS_OPTION}={RANDOM_WEIGHTS}")

    def codec(self, steps: int | None) -> Codec:
        opts = dict(self.options)
        if steps is not None:
            opts[STEPS_OPTION] = steps
        try:
            return self.cls(opts, device=self.config.device)
        except CodecUnavailable as err:
            if not self.can_fall_back:
                raise SpeedError(f"codec {self.config.codec} is unavailable: {err}") from None
            self.use_random_weights(err.reason)
            return self.codec(steps)
        except CodecError as err:
            raise SpeedError(f"codec {self.config.codec}: {err}") from None

    def rate(self) -> Any:
        points = list(self.cls.rate_points)
        if self.config.rate is not None:
            try:
                return self.cls(self.options, device=self.config.device).validate_rate(str(self.config.rate))
            except (ValueError, IndexError, CodecError):
                raise SpeedError(f"rate {self.config.rate!r} is not a valid {self.cls.rate_label} "
                                 f"for {self.config.codec}") from None
        return points[len(points) // 2] if points else None


