"""Measure a codec's encode and decode time (and peak memory) against its number of denoising steps.

For every image size: build the codec for every step count (``steps=N``) and run ``warmup`` untimed
encode+decode rounds each (model loading, allocator and cuDNN warm-up); then ``repeats`` timed rounds, each
encoding and decoding once at every step count in turn. Each call is timed alone (``perf_counter``, CUDA
synchronised) under its own peak-memory sampler. Codecs without a ``steps`` option give one row per size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from ..codec import Codec, CodecError, CodecUnavailable
from ..download import DownloadError
from ..registry import UnknownNameError
from ..codecs import get_codec_class
from .environment import environment, load_average
from .fit import fit_linear
from .measure import MIB, PeakRSS, cuda_peak_mib, reset_cuda_peak, summarize, synchronizer, timed

SCHEMA = "cdc-bench-speed/1"
STEPS_OPTION = "steps"
WEIGHTS_OPTION = "weights"
RANDOM_WEIGHTS = "random"
MEMORY_METHOD = ("CPU: peak process RSS sampled every 5 ms by a psutil thread during the timed calls "
                 "(a lower bound; ru_maxrss is lifetime-wide, tracemalloc misses torch buffers); "
                 "CUDA: torch.cuda.max_memory_allocated")
RANDOM_NOTE = ("random weights: the released architecture with randomly initialised parameters; timings are "
               "representative, reconstructions and bpp are not")


class SpeedError(Exception):
    """The benchmark cannot run as asked (bad size, codec unavailable, decode failed...); the message says why."""


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
    from ..images import read_image

    image, _ = read_image(path)
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(resized[top:top + height, left:left + width])


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _codec_dtype(codec: Codec) -> str:
    for key in ("dtype", "precision"):
        if codec.options.get(key):
            return str(codec.options[key])
    import torch

    return str(torch.get_default_dtype()).removeprefix("torch.")


class _Plan:
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
        self.has_steps = STEPS_OPTION in self.cls.option_specs
        user_set_weights = WEIGHTS_OPTION in self.options
        self.can_fall_back = WEIGHTS_OPTION in self.cls.option_specs and not user_set_weights
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
        return [int(self.options.get(STEPS_OPTION, self.cls.option_specs[STEPS_OPTION].default))]

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


class _Point:
    """One step count of one size: its codec and what its timed calls measured."""

    def __init__(self, steps: int | None, codec: Codec):
        self.steps, self.codec = steps, codec
        self.encode: list[float] = []
        self.decode: list[float] = []
        self.data, self.recon, self.encoded = b"", None, None
        self.rss_before = 0
        self.peak_rss = {"encode": 0, "decode": 0}
        self.rss_increase = {"encode": 0, "decode": 0}
        self.cuda: dict[str, float | None] = {"encode": None, "decode": None}

    def run(self, phase: str, fn: Callable[[], Any], device: str, sync: Callable[[], None]) -> Any:
        reset_cuda_peak(device)
        with PeakRSS() as mem:
            seconds, out = timed(fn, sync)
        getattr(self, phase).append(seconds)
        if not self.rss_before:
            self.rss_before = mem.baseline_bytes
        self.peak_rss[phase] = max(self.peak_rss[phase], mem.peak_bytes)
        self.rss_increase[phase] = max(self.rss_increase[phase], mem.peak_bytes - mem.baseline_bytes)
        cuda = cuda_peak_mib(device)
        if cuda is not None:
            self.cuda[phase] = max(self.cuda[phase] or 0.0, cuda)
        return out


def _warmed_codec(plan: _Plan, steps: int | None, image: np.ndarray, rate: Any) -> Codec:
    """Build the codec for ``steps`` and run the untimed warm-up rounds (switching to random weights if the
    released ones turn out to be unobtainable on the first one)."""
    codec = plan.codec(steps)
    for i in range(plan.config.warmup):
        try:
            codec.decode(codec.encode(image, rate).data)
        except (CodecUnavailable, DownloadError) as err:
            if i > 0 or not plan.can_fall_back:
                raise
            plan.use_random_weights(getattr(err, "reason", str(err)))
            codec = plan.codec(steps)
            codec.decode(codec.encode(image, rate).data)
    return codec


def _measure_size(plan: _Plan, image: np.ndarray, rate: Any,
                  log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """All step counts at one size. The timed rounds interleave the step counts (round 1: every step count,
    round 2: every step count, ...): load from other processes that drifts during a run then spreads over all
    step counts instead of inflating the last ones, which would bend the fit and fake a per-step cost."""
    cfg = plan.config
    height, width = image.shape[:2]
    sync = synchronizer(cfg.device)
    points: list[_Point] = []
    where = f"{cfg.codec} at {width}x{height}"
    try:
        for steps in plan.steps:
            where = f"{cfg.codec} at {width}x{height}" + (f", steps={steps}" if steps is not None else "")
            if log is not None and cfg.warmup:
                log(f"{where}: warm-up")
            points.append(_Point(steps, _warmed_codec(plan, steps, image, rate)))
        for _ in range(cfg.repeats):
            for point in points:
                where = f"{cfg.codec} at {width}x{height}" + (
                    f", steps={point.steps}" if point.steps is not None else "")
                codec = point.codec
                point.encoded = point.run("encode", lambda: codec.encode(image, rate), cfg.device, sync)
                point.data = data = point.encoded.data
                point.recon = point.run("decode", lambda: codec.decode(data), cfg.device, sync)
                if log is not None:
                    log(f"{where}: round {len(point.decode)}/{cfg.repeats}: encode {point.encode[-1]:.3g} s, "
                        f"decode {point.decode[-1]:.3g} s")
    except (CodecError, DownloadError) as err:
        raise SpeedError(f"{where}: {type(err).__name__}: {err}") from None
    plan.last_codec = points[-1].codec
    rows = []
    for point in points:
        where = f"{cfg.codec} at {width}x{height}" + (f", steps={point.steps}" if point.steps is not None else "")
        if not isinstance(point.recon, np.ndarray) or point.recon.shape != image.shape:
            got = getattr(point.recon, "shape", type(point.recon).__name__)
            raise SpeedError(f"{where}: decode returned {got}, expected an image of shape {image.shape}")
        rows.append({
            "width": width, "height": height, "steps": point.steps,
            "bytes": len(point.data), "bpp": 8 * len(point.data) / (width * height),
            "encode": summarize(point.encode), "decode": summarize(point.decode),
            "memory": {
                "rss_before_mib": point.rss_before / MIB,
                "encode_peak_rss_mib": point.peak_rss["encode"] / MIB,
                "decode_peak_rss_mib": point.peak_rss["decode"] / MIB,
                "decode_rss_increase_mib": point.rss_increase["decode"] / MIB,
                "encode_cuda_max_allocated_mib": point.cuda["encode"],
                "decode_cuda_max_allocated_mib": point.cuda["decode"],
            },
            "codec_info": _json_safe(point.encoded.info),
        })
    return rows


def fits_for(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``time = a + b * steps`` for encode and decode medians, one fit per image size with >= 2 step counts."""
    fits = []
    sizes = sorted({(r["width"], r["height"]) for r in rows if r.get("steps") is not None})
    for width, height in sizes:
        chosen = sorted((r for r in rows if (r["width"], r["height"]) == (width, height)
                         and r.get("steps") is not None), key=lambda r: r["steps"])
        for phase in ("encode", "decode"):
            fit = fit_linear([r["steps"] for r in chosen], [r[phase]["median"] for r in chosen])
            if fit is not None:
                fits.append({"width": width, "height": height, "phase": phase, **fit.as_dict()})
    return fits


def run_speed(config: SpeedConfig, progress: Callable[[dict[str, Any]], None] | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark and return the report (a JSON-ready dict; see :data:`SCHEMA`).

    ``progress`` receives each finished row (a size's rows finish together); ``log`` a line per timed round.
    """
    if config.repeats < 1:
        raise SpeedError(f"--repeats must be at least 1, got {config.repeats}")
    if config.warmup < 0:
        raise SpeedError(f"--warmup must be 0 or more, got {config.warmup}")
    if not config.sizes:
        raise SpeedError("no image size given (e.g. --size 256x256)")
    if config.threads is not None and config.threads < 1:
        raise SpeedError(f"--threads must be at least 1, got {config.threads}")
    import torch

    threads_before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, progress, log)
    finally:
        torch.set_num_threads(threads_before)  # a library call must not leave the process's thread count changed


def _run(config: SpeedConfig, progress: Callable[[dict[str, Any]], None] | None,
         log: Callable[[str], None] | None) -> dict[str, Any]:
    notes: list[str] = []
    plan = _Plan(config, notes)
    rate = plan.rate()
    plan.check_weights(rate)
    env = environment(config.device)
    env["load_before"] = load_average()
    rows: list[dict[str, Any]] = []
    for width, height in config.sizes:
        image = image_at(config.image, width, height) if config.image else synthetic_image(width, height)
        for row in _measure_size(plan, image, rate, log):
            rows.append(row)
            if progress is not None:
                progress(row)
    codec = plan.last_codec  # the configuration measured last, for its dtype and weights
    env["load_after"] = load_average()
    env["dtype"] = _codec_dtype(codec)
    weights = codec.options.get(WEIGHTS_OPTION)
    if weights == RANDOM_WEIGHTS:
        notes.append(RANDOM_NOTE)
    base_options = {k: v for k, v in codec.options.items() if k != STEPS_OPTION}
    return {
        "schema": SCHEMA,
        "codec": config.codec,
        "options": _json_safe(base_options),
        "rate": _json_safe(rate),
        "rate_label": plan.cls.rate_label,
        "steps_option": plan.has_steps,
        "weights": weights,
        "random_weights": weights == RANDOM_WEIGHTS,
        "image": str(config.image) if config.image else "synthetic",
        "settings": {
            "repeats": config.repeats, "warmup": config.warmup,
            "sizes": [f"{w}x{h}" for w, h in config.sizes],
            "steps": plan.steps, "memory_method": MEMORY_METHOD,
        },
        "env": env,
        "notes": notes,
        "rows": rows,
        "fits": fits_for(rows),
    }
