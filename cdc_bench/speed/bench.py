"""Measure a codec's encode time once per image size and its decode time against the number of denoising steps.

For every image size: build the codec for every step count (``steps=N``) and run ``warmup`` untimed
encode+decode rounds each (model loading, allocator and cuDNN warm-up). Then ``repeats`` timed rounds; a round
encodes the image once and decodes that bitstream at every step count in turn. Encoding is timed once per size
because the step count is a decoder setting: the bitstream does not depend on it (checked during the warm-up),
so timing the encoder per step count only repeats one measurement and invites a meaningless fit. Each call is
timed alone on three clocks (``measure.timed``: wall, CPU, CUDA events) under its own peak-memory sampler.
Codecs without a ``steps`` option give one decode row per size.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Mapping

import numpy as np

from ..codecs.base import Codec, CodecError, CodecUnavailable
from ..download import DownloadError
from ..errors import DownloadError as CoreDownloadError
from .environment import environment
from .fit import fit_linear
from ..provenance import LoadMonitor, load_average
from .measure import MIB, PeakRSS, Timing, cuda_peak_mib, is_cuda, reset_cuda_peak, summarize, timed
from .plan import (MEMORY_METHOD, RANDOM_NOTE, RANDOM_WEIGHTS, STEPS_OPTION, WEIGHTS_OPTION, Plan, SpeedConfig,
                   SpeedError, codec_dtype, image_at, json_safe, parse_size, parse_sizes, parse_steps,
                   synthetic_image)
from .report import SCHEMA
from .slowdown import injected_slowdown, requested

__all__ = ["SCHEMA", "SpeedConfig", "SpeedError", "parse_size", "parse_sizes", "parse_steps", "run_speed",
           "synthetic_image", "fits_for", "gate_clock", "timing_key", "RANDOM_NOTE"]

CLOCKS = ("wall", "cpu", "cuda")


def gate_clock(device: str) -> str:
    """The clock a regression verdict uses: GPU time on CUDA, CPU time on the CPU (stable under load)."""
    return "cuda" if is_cuda(device) else "cpu"


def timing_key(phase: str, clock: str) -> str:
    """Where a row keeps a phase's summary on a clock: ``decode`` (wall), ``decode_cpu``, ``decode_cuda``."""
    return phase if clock == "wall" else f"{phase}_{clock}"


class _Phase:
    """Every timed call of one phase (the encode of a size, or the decode at one step count)."""

    def __init__(self, phase: str):
        self.phase = phase
        self.times: dict[str, list[float]] = {clock: [] for clock in CLOCKS}
        self.rss_before = 0
        self.peak_rss = 0
        self.rss_increase = 0
        self.cuda_peak: float | None = None

    def run(self, fn: Callable[[], Any], device: str) -> Any:
        reset_cuda_peak(device)
        with PeakRSS() as mem:
            timing, out = timed(fn, device, other_cpu=lambda: mem.cpu_seconds)
        self._add(timing)
        if not self.rss_before:
            self.rss_before = mem.baseline_bytes
        self.peak_rss = max(self.peak_rss, mem.peak_bytes)
        self.rss_increase = max(self.rss_increase, mem.peak_bytes - mem.baseline_bytes)
        cuda = cuda_peak_mib(device)
        if cuda is not None:
            self.cuda_peak = max(self.cuda_peak or 0.0, cuda)
        return out

    def _add(self, timing: Timing) -> None:
        for clock in CLOCKS:
            value = getattr(timing, clock)
            if value is not None:
                self.times[clock].append(value)

    def summaries(self) -> dict[str, Any]:
        return {timing_key(self.phase, clock): summarize(self.times[clock]) if self.times[clock] else None
                for clock in CLOCKS}

    def memory(self) -> dict[str, Any]:
        p = self.phase
        return {"rss_before_mib": self.rss_before / MIB, f"{p}_peak_rss_mib": self.peak_rss / MIB,
                f"{p}_rss_increase_mib": self.rss_increase / MIB, f"{p}_cuda_max_allocated_mib": self.cuda_peak}


def _weights_unobtainable(err: BaseException) -> bool:
    """A missing checkpoint or a failed download, raised as such or wrapped by the codec base's error mapping."""
    kinds = (CodecUnavailable, DownloadError, CoreDownloadError)
    return isinstance(err, kinds) or isinstance(err.__cause__, kinds)


def _encoded(out: Any) -> tuple[bytes, dict[str, Any]]:
    """The bitstream and info of an encode result (``bytes``, or an ``Encoded`` with ``.data`` and ``.info``)."""
    if isinstance(out, (bytes, bytearray)):
        return bytes(out), {}
    return out.data, dict(getattr(out, "info", None) or {})


def _warmed_codec(plan: Plan, steps: int | None, image: np.ndarray,
                  rate: Any) -> tuple[Codec, tuple[bytes, dict[str, Any]] | None]:
    """Build the codec for ``steps`` and run the untimed warm-up rounds (switching to random weights if the
    released ones turn out to be unobtainable on the first one); also the warm-up's bitstream and info, if any."""
    codec = plan.codec(steps)
    encoded = None
    for i in range(plan.config.warmup):
        try:
            encoded = _encoded(codec.encode(image, rate))
            codec.decode(encoded[0])
        except (CodecError, DownloadError, CoreDownloadError) as err:
            if i > 0 or not plan.can_fall_back or not _weights_unobtainable(err):
                raise
            plan.use_random_weights(getattr(err, "reason", None) or str(err.__cause__ or err))
            codec = plan.codec(steps)
            encoded = _encoded(codec.encode(image, rate))
            codec.decode(encoded[0])
    return codec, encoded


def _where(plan: Plan, image: np.ndarray, steps: int | None = None) -> str:
    height, width = image.shape[:2]
    return f"{plan.config.codec} at {width}x{height}" + (f", steps={steps}" if steps is not None else "")


def _measure_size(plan: Plan, image: np.ndarray, rate: Any, monitor: LoadMonitor,
                  log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The encode row and the decode rows of one size.

    Rounds interleave the step counts (round 1: encode, decode at every step count; round 2: ...): load from
    other processes that drifts during a run then spreads over all step counts instead of inflating the last
    ones, which would bend the fit and fake a per-step cost.
    """
    cfg = plan.config
    height, width = image.shape[:2]
    where = _where(plan, image)
    codecs: dict[int | None, Codec] = {}
    try:
        warm: dict[int | None, tuple[bytes, dict[str, Any]] | None] = {}
        for steps in plan.steps:
            where = _where(plan, image, steps)
            if log is not None and cfg.warmup:
                log(f"{where}: warm-up")
            codecs[steps], warm[steps] = _warmed_codec(plan, steps, image, rate)
        if len({w[0] for w in warm.values() if w is not None}) > 1:
            raise SpeedError(f"{_where(plan, image)}: the bitstream differs between step counts, so the encoder "
                             "depends on steps and one encode per size cannot stand for all of them")
        encoder = codecs[plan.steps[0]]
        encode = _Phase("encode")
        decodes = {steps: _Phase("decode") for steps in plan.steps}
        data, info, recons = b"", {}, {}
        for r in range(cfg.repeats):
            where = _where(plan, image)
            data, info = _encoded(encode.run(lambda: encoder.encode(image, rate), cfg.device))
            for steps, codec in codecs.items():
                where = _where(plan, image, steps)
                recons[steps] = decodes[steps].run(lambda: codec.decode(data), cfg.device)
            monitor.sample(f"after round {r + 1} at {width}x{height}")
            if log is not None:
                decoded = ", ".join(f"{s if s is not None else '-'}: {d.times['wall'][-1]:.3g}"
                                    for s, d in decodes.items())
                log(f"{_where(plan, image)}: round {r + 1}/{cfg.repeats}: encode {encode.times['wall'][-1]:.3g} s, "
                    f"decode (steps: s) {decoded}")
    except (CodecError, DownloadError, CoreDownloadError) as err:
        raise SpeedError(f"{where}: {type(err).__name__}: {err}") from None
    plan.last_codec = codecs[plan.steps[-1]]
    size = {"width": width, "height": height, "bytes": len(data), "bpp": 8 * len(data) / (width * height)}
    encode_row = {**size, **encode.summaries(), "memory": encode.memory(), "info": json_safe(info)}
    rows = []
    for steps, codec in codecs.items():
        recon = recons[steps]
        if not isinstance(recon, np.ndarray) or recon.shape != image.shape:
            got = getattr(recon, "shape", type(recon).__name__)
            raise SpeedError(f"{_where(plan, image, steps)}: decode returned {got}, "
                             f"expected an image of shape {image.shape}")
        # What the codec says about the decode: its own report of the last call where it has one, else the
        # info of this step count's warm-up encode (which carries the decoder settings, e.g. CDC's steps).
        said = codec.extra_metrics() if hasattr(codec, "extra_metrics") else (warm[steps] or (b"", {}))[1]
        rows.append({**size, "steps": steps, **decodes[steps].summaries(), "memory": decodes[steps].memory(),
                     "codec_info": json_safe(said or {})})
    return encode_row, rows


def fits_for(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``decode time = a + b * steps`` per image size with >= 2 step counts, on the wall clock and (where
    recorded) the CPU clock. Encode is not fitted: it does not depend on steps."""
    fits = []
    sizes = sorted({(r["width"], r["height"]) for r in rows if r.get("steps") is not None})
    for width, height in sizes:
        chosen = sorted((r for r in rows if (r["width"], r["height"]) == (width, height)
                         and r.get("steps") is not None), key=lambda r: r["steps"])
        for clock in ("wall", "cpu"):
            key = timing_key("decode", clock)
            if any(r.get(key) is None for r in chosen):
                continue
            fit = fit_linear([r["steps"] for r in chosen], [r[key]["median"] for r in chosen])
            if fit is not None:
                fits.append({"width": width, "height": height, "phase": "decode", "clock": clock, **fit.as_dict()})
    return fits


def run_speed(config: SpeedConfig, progress: Callable[[dict[str, Any]], None] | None = None,
              log: Callable[[str], None] | None = None, strict: bool = False) -> dict[str, Any]:
    """Run the benchmark and return the report (a JSON-ready dict; see :data:`SCHEMA`).

    ``progress`` receives each finished decode row (a size's rows finish together); ``log`` a line per timed
    round. ``strict`` raises :class:`~cdc_bench.provenance.MachineBusy` as soon as the load average exceeds the
    number of cores. The test hook of :mod:`cdc_bench.speed.slowdown` is applied when its variable is set.
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

    hook = requested()
    threads_before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        with injected_slowdown(*hook) if hook else nullcontext():
            report = _run(config, progress, log, LoadMonitor(strict=strict))
    finally:
        torch.set_num_threads(threads_before)  # a library call must not leave the process's thread count changed
    if hook:
        report["env"]["test_slowdown"] = {"factor": hook[0], "target": hook[1]}
        report["notes"].append(f"TEST HOOK: {hook[1]} made {hook[0]:g}x slower in CPU time "
                               "(CDC_BENCH_TEST_SLOWDOWN); these timings are not the codec's")
    return report


def _run(config: SpeedConfig, progress: Callable[[dict[str, Any]], None] | None,
         log: Callable[[str], None] | None, monitor: LoadMonitor) -> dict[str, Any]:
    notes: list[str] = []
    monitor.sample("at the start")
    plan = Plan(config, notes)
    rate = plan.rate()
    plan.check_weights(rate)
    env = environment(config.device)
    env["load_before"] = load_average()
    rows: list[dict[str, Any]] = []
    encodes: list[dict[str, Any]] = []
    for width, height in config.sizes:
        image = image_at(config.image, width, height) if config.image else synthetic_image(width, height)
        encode_row, size_rows = _measure_size(plan, image, rate, monitor, log)
        encodes.append(encode_row)
        for row in size_rows:
            rows.append(row)
            if progress is not None:
                progress(row)
    monitor.sample("at the end")
    codec = plan.last_codec  # the configuration measured last, for its dtype and weights
    env["load_after"] = load_average()
    env["dtype"] = codec_dtype(codec)
    weights = codec.options.get(WEIGHTS_OPTION)
    if weights == RANDOM_WEIGHTS:
        notes.append(RANDOM_NOTE)
    if monitor.busy:
        notes.append(f"machine busy: {monitor.describe()}; wall times are inflated, the gate compares "
                     f"{gate_clock(config.device)} time")
    base_options = {k: v for k, v in codec.options.items() if k != STEPS_OPTION}
    return {
        "schema": SCHEMA,
        "codec": config.codec,
        "options": json_safe(base_options),
        "rate": json_safe(rate),
        "rate_label": plan.cls.rate_label,
        "steps_option": plan.has_steps,
        "weights": weights,
        "random_weights": weights == RANDOM_WEIGHTS,
        "image": str(config.image) if config.image else "synthetic",
        "gate_clock": gate_clock(config.device),
        "settings": {
            "repeats": config.repeats, "warmup": config.warmup,
            "sizes": [f"{w}x{h}" for w, h in config.sizes],
            "steps": plan.steps, "memory_method": MEMORY_METHOD,
        },
        "env": env,
        "load": monitor.as_dict(),
        "notes": notes,
        "encode": encodes,
        "rows": rows,
        "fits": fits_for(rows),
    }
