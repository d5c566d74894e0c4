"""Decoding-speed benchmark: time and memory against denoising steps, a linear fit, and regression checks.

``run_speed`` measures, ``fit_linear`` fits ``time = a + b * steps``, ``compare_reports`` compares with a saved
run, ``save_report``/``load_report`` keep the JSON, ``plot_speed`` draws the figure.
"""

from .bench import SCHEMA, SpeedConfig, SpeedError, parse_size, parse_sizes, parse_steps, run_speed, synthetic_image
from .compare import Comparison, RatioRow, compare_reports, mismatches, soft_differences
from .fit import LinearFit, fit_linear
from .measure import PeakRSS, summarize
from .report import SpeedReportError, load_report, save_report

__all__ = [
    "SCHEMA", "SpeedConfig", "SpeedError", "parse_size", "parse_sizes", "parse_steps", "run_speed",
    "synthetic_image", "Comparison", "RatioRow", "compare_reports", "mismatches", "soft_differences",
    "LinearFit", "fit_linear", "PeakRSS", "summarize", "SpeedReportError", "load_report", "save_report",
]
