"""Speed figure: decode time against the number of denoising steps, with the linear fit's per-step cost.

Reads the JSON of ``cdc-bench speed`` (schema ``cdc-bench-speed/1``: ``rows`` with ``width, height, steps,
decode: {median, q1, q3}`` and ``fits`` with ``width, height, phase, a, b``). A flatter form,
``{"runs": [{"codec", "size", "steps", "decode_s_median"}], "fits": [{"size", "a", "b"}]}``, is read too.
Several files (one per codec) go into one figure. Every series (one codec at one size) has its own marker and
line style as well as its colour, so the figure reads in grey-scale print and for colour-blind readers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..analysis.curves import display_name
from ..speed.report import SpeedReportError
from .captions import sentences, speed_text
from .style import COLUMN_WIDTH, OPTION_LINESTYLES, codec_style, paper_style, save_figure

__all__ = ["SpeedReportError", "plot_speed", "read_speed"]

#: one marker per series, in order; the codec's own marker comes first (see :func:`_series_styles`)
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")


def read_speed(report: Mapping[str, Any] | str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, fits) as frames. runs: codec, size, steps, decode_s_median, decode_s_q1, decode_s_q3.
    fits: codec, size, a, b (decode phase only)."""
    source = str(report) if not isinstance(report, Mapping) else "speed report"
    report = load_report(report)
    codec = str(report.get("codec", "codec"))
    # Random weights time the released architecture faithfully; the legend says so, as the speed command does.
    tag = " (random weights)" if report.get("random_weights") else ""
    runs, fits = [], []
    try:
        for r in report.get("rows", []):
            if r.get("steps") is None:
                continue
            dec = r["decode"]
            runs.append({"codec": codec, "tag": tag, "size": f"{r['width']}×{r['height']}", "steps": r["steps"],
                         "decode_s_median": dec["median"], "decode_s_q1": dec.get("q1"), "decode_s_q3": dec.get("q3")})
        for r in report.get("runs", []):
            runs.append({"codec": str(r.get("codec", codec)), "tag": tag, "size": str(r["size"]).replace("x", "×"),
                         "steps": r["steps"], "decode_s_median": r["decode_s_median"],
                         "decode_s_q1": r.get("decode_s_q1"), "decode_s_q3": r.get("decode_s_q3")})
        for f in report.get("fits", []):
            # decode time against steps, on the wall clock (a report may also hold CPU-time fits)
            if f.get("phase", "decode") != "decode" or f.get("clock", "wall") != "wall":
                continue
            size = f"{f['width']}×{f['height']}" if "width" in f else str(f["size"]).replace("x", "×")
            fits.append({"codec": str(f.get("codec", codec)), "size": size, "a": float(f["a"]), "b": float(f["b"])})
    except (KeyError, TypeError) as err:
        raise SpeedReportError(f"{source}: missing field {err} in a run or fit") from None
    if not runs:
        raise SpeedReportError(f"{source}: no runs with a step count (was the codec's steps option swept?)")
    return pd.DataFrame(runs), pd.DataFrame(fits, columns=["codec", "size", "a", "b"])


def load_report(report: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    """A speed report as given, or read from its JSON file."""
    if isinstance(report, Mapping):
        return report
    try:
        return json.loads(Path(report).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SpeedReportError(f"{report}: cannot read speed JSON ({err})") from None


def speed_caption(reports: Sequence[Mapping[str, Any]]) -> str:
    """The speed figure's caption: the clock, the rounds, what the bars and lines are, the machine load."""
    return sentences(["Decode time per image against the number of denoising steps", *speed_text(reports),
                      "Bars: interquartile range (first to third quartile) of the timed rounds; lines: the fit "
                      "decode time = a + b x steps on the wall clock, per image size",
                      "Random weights time the released architecture, not a trained model"
                      if any(r.get("random_weights") for r in reports) else None])


def plot_speed(reports: Sequence[Mapping[str, Any] | str | Path], stem: str | Path,
               formats: Sequence[str] = ("pdf", "png"), width: float = COLUMN_WIDTH) -> list[Path]:
    """Decode time (median, IQR bars) against steps; each series' fitted line in its own line style, labelled
    with its cost per step. Step counts are whole numbers on the axis; the caption (:func:`speed_caption`) is
    written beside the figure."""
    reports = [load_report(r) for r in reports]
    parts = [read_speed(r) for r in reports]
    runs = pd.concat([p[0] for p in parts], ignore_index=True)
    fits = pd.concat([p[1] for p in parts], ignore_index=True)
    with paper_style(width):
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        fig, ax = plt.subplots(figsize=(width, width * 0.75), layout="constrained")
        groups = sorted(runs.groupby(["codec", "size"]), key=lambda g: (g[0][0], _pixels(g[0][1])))
        styles = _series_styles([key for key, _ in groups])
        for (codec, size), group in groups:
            group = group.sort_values("steps")
            style = styles[(codec, size)]
            x = group["steps"].to_numpy(float)
            y = group["decode_s_median"].to_numpy(float)
            yerr = None
            if group["decode_s_q1"].notna().all() and group["decode_s_q3"].notna().all():
                yerr = np.vstack([y - group["decode_s_q1"].to_numpy(float), group["decode_s_q3"].to_numpy(float) - y])
            ax.errorbar(x, y, yerr=yerr, fmt=style["marker"], color=style["color"], mfc=style["mfc"],
                        capsize=1.5, label=f"{display_name(codec)} {size}{group['tag'].iloc[0]}")
            fit = fits[(fits["codec"] == codec) & (fits["size"] == size)]
            if fit.empty:
                continue
            a, b = float(fit["a"].iloc[0]), float(fit["b"].iloc[0])
            xs = np.linspace(0, x.max(), 50)
            ax.plot(xs, a + b * xs, linestyle=style["linestyle"], color=style["color"], linewidth=0.8,
                    label=f"fit {size}: {a:.3g} s + {_per_step(b)}/step")
            # The per-step cost is written on the line itself as well as in the legend: below the line for even
            # series (series run from small to large images, so the lower line first), above it for odd ones,
            # so the labels of lines that run close do not overlap.
            xm = float(np.median(x))
            below = style["index"] % 2 == 0
            ax.annotate(f"{_per_step(b)}/step", (xm, a + b * xm), textcoords="offset points",
                        xytext=(3, -3) if below else (-3, 3), ha="left" if below else "right",
                        va="top" if below else "bottom", fontsize="small", color=style["color"])
        ax.set_xlabel("Denoising steps")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # a step count is a whole number
        ax.set_ylabel("Decode time per image [s] ↓")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
        return save_figure(fig, stem, formats, speed_caption(reports))


def _series_styles(series: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Colour, marker, marker face and fit line style of each (codec, size) series, all distinct between series.

    The colour is the codec's (the same as in the RD figures); with one codec and several sizes the sizes would
    share it, so then marker, line style and filled/hollow markers tell them apart.
    """
    styles = {}
    for i, (codec, size) in enumerate(series):
        base = codec_style(codec)
        markers = (base["marker"],) + tuple(m for m in SERIES_MARKERS if m != base["marker"])
        styles[(codec, size)] = {
            "color": base["color"],
            "marker": markers[i % len(markers)],
            "mfc": base["color"] if i % 2 == 0 else "white",
            "linestyle": OPTION_LINESTYLES[i % len(OPTION_LINESTYLES)],
            "index": i,
        }
    return styles


def _per_step(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if abs(seconds) < 1 else f"{seconds:.3g} s"


def _pixels(size: str) -> int:
    try:
        w, h = size.split("×")
        return int(w) * int(h)
    except ValueError:
        return 0
