"""Speed figure: decode time against the number of denoising steps, with the linear fit's per-step cost.

Reads the JSON of ``cdc-bench speed`` (schema ``cdc-bench-speed/1``: ``rows`` with ``width, height, steps,
decode: {median, q1, q3}`` and ``fits`` with ``width, height, phase, a, b``). A flatter form,
``{"runs": [{"codec", "size", "steps", "decode_s_median"}], "fits": [{"size", "a", "b"}]}``, is read too.
Several files (one per codec) go into one figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .style import COLUMN_WIDTH, OPTION_LINESTYLES, codec_style, paper_style, save_figure


class SpeedReportError(ValueError):
    """A speed JSON this module cannot read; the message names the file and what is missing."""


def read_speed(report: Mapping[str, Any] | str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, fits) as frames. runs: codec, size, steps, decode_s_median, decode_s_q1, decode_s_q3.
    fits: codec, size, a, b (decode phase only)."""
    source = str(report) if not isinstance(report, Mapping) else "speed report"
    if not isinstance(report, Mapping):
        try:
            report = json.loads(Path(report).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SpeedReportError(f"{source}: cannot read speed JSON ({err})") from None
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
            if f.get("phase", "decode") != "decode":
                continue
            size = f"{f['width']}×{f['height']}" if "width" in f else str(f["size"]).replace("x", "×")
            fits.append({"codec": str(f.get("codec", codec)), "size": size, "a": float(f["a"]), "b": float(f["b"])})
    except (KeyError, TypeError) as err:
        raise SpeedReportError(f"{source}: missing field {err} in a run or fit") from None
    if not runs:
        raise SpeedReportError(f"{source}: no runs with a step count (was the codec's steps option swept?)")
    return pd.DataFrame(runs), pd.DataFrame(fits, columns=["codec", "size", "a", "b"])


def plot_speed(reports: Sequence[Mapping[str, Any] | str | Path], stem: str | Path,
               formats: Sequence[str] = ("pdf", "png"), width: float = COLUMN_WIDTH) -> list[Path]:
    """Decode time (median, IQR bars) against steps; the fitted line dashed, labelled with its cost per step."""
    parts = [read_speed(r) for r in reports]
    runs = pd.concat([p[0] for p in parts], ignore_index=True)
    fits = pd.concat([p[1] for p in parts], ignore_index=True)
    sizes = sorted(runs["size"].unique(), key=_pixels)
    with paper_style(width):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(width, width * 0.75), layout="constrained")
        for (codec, size), group in runs.groupby(["codec", "size"], sort=True):
            group = group.sort_values("steps")
            style = codec_style(codec)
            x = group["steps"].to_numpy(float)
            y = group["decode_s_median"].to_numpy(float)
            yerr = None
            if group["decode_s_q1"].notna().all() and group["decode_s_q3"].notna().all():
                yerr = np.vstack([y - group["decode_s_q1"].to_numpy(float), group["decode_s_q3"].to_numpy(float) - y])
            ax.errorbar(x, y, yerr=yerr, fmt=style["marker"], color=style["color"], capsize=1.5,
                        label=f"{codec} {size}{group['tag'].iloc[0]}")
            fit = fits[(fits["codec"] == codec) & (fits["size"] == size)]
            if fit.empty:
                continue
            a, b = float(fit["a"].iloc[0]), float(fit["b"].iloc[0])
            xs = np.linspace(0, x.max(), 50)
            ax.plot(xs, a + b * xs, linestyle=OPTION_LINESTYLES[sizes.index(size) % len(OPTION_LINESTYLES)],
                    color=style["color"], linewidth=0.8, label=f"fit: {a:.3g} s + {_per_step(b)}/step")
            # The per-step cost is written on the line itself (mid-way, above it) as well as in the legend.
            xm = float(np.median(x))
            ax.annotate(f"{_per_step(b)}/step", (xm, a + b * xm), textcoords="offset points", xytext=(-3, 3),
                        ha="right", va="bottom", fontsize="small", color=style["color"])
        ax.set_xlabel("Denoising steps")
        ax.set_ylabel("Decode time per image [s] ↓")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
        return save_figure(fig, stem, formats)


def _per_step(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if abs(seconds) < 1 else f"{seconds:.3g} s"


def _pixels(size: str) -> int:
    try:
        w, h = size.split("×")
        return int(w) * int(h)
    except ValueError:
        return 0
