"""Decoding-speed benchmark: time and memory against denoising steps, a linear fit, and a regression gate.

``run_speed`` measures (``plan`` builds the codecs, ``bench`` times them on wall, CPU and CUDA clocks),
``fit_linear`` fits ``decode time = a + b * steps``, ``compare_reports`` is the gate against a saved run
(``gate`` holds its bootstrap statistic), ``LoadMonitor`` (from :mod:`cdc_bench.provenance`) watches the machine's load, ``slowdown`` is the test hook that
makes the denoiser deliberately slower, ``save_report``/``load_report`` keep the JSON. The figure is
``cdc_bench.plots.speed``.
"""

from .bench import SCHEMA, SpeedConfig, SpeedError, parse_size, parse_sizes, parse_steps, run_speed, synthetic_image
from .compare import Comparison, GateRow, PointRatio, compare_reports, mismatches, soft_differences
from .fit import LinearFit, fit_linear
from .gate import Interval, gate_interval, median_ratio_interval
from ..provenance import LoadMonitor, MachineBusy
from .measure import PeakRSS, Timing, summarize, timed
from .report import SpeedReportError, load_report, save_report

__all__ = [
    "SCHEMA", "SpeedConfig", "SpeedError", "parse_size", "parse_sizes", "parse_steps", "run_speed",
    "synthetic_image", "Comparison", "GateRow", "PointRatio", "compare_reports", "mismatches", "soft_differences",
    "LinearFit", "fit_linear", "Interval", "gate_interval", "median_ratio_interval", "LoadMonitor", "MachineBusy",
    "PeakRSS", "Timing", "summarize", "timed", "SpeedReportError", "load_report", "save_report",
]
