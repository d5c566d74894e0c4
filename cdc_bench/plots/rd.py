"""Rate-quality curves: bpp against each metric, one line per (codec, options), published curves dashed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from .frames import MetricSpec
from .published import PublishedCurve
from .style import COLUMN_WIDTH, OPTION_LINESTYLES, PUBLISHED_LINESTYLE, codec_style, paper_style, save_figure

log = logging.getLogger(__name__)


def rd_axes(ax, points: pd.DataFrame, metric: MetricSpec, published: Sequence[PublishedCurve] = (),
            legend: bool = True) -> int:
    """Draw the curves of one dataset and one metric on ``ax``; returns how many curves were drawn.

    ``points`` is :func:`cdc_bench.plots.frames.rd_points` for one dataset.
    """
    drawn = 0
    option_index: dict[str, int] = {}
    for (codec, options), curve in points.groupby(["codec", "options"], sort=True):
        curve = curve.dropna(subset=["bpp", metric.column]).sort_values("bpp")
        if curve.empty:
            continue
        # Several option sets of one codec share its colour and marker; line style tells them apart.
        k = option_index.setdefault(codec, 0)
        option_index[codec] += 1
        ax.plot(curve["bpp"], curve[metric.column], linestyle=OPTION_LINESTYLES[k % len(OPTION_LINESTYLES)],
                label=curve["label"].iloc[0], **codec_style(codec))
        drawn += 1
    for ref in published:
        if metric.column not in ref.points or ref.points[metric.column].notna().sum() == 0:
            log.info("published %s has no %s values; not drawn on that axis", ref.label, metric.name)
            continue
        curve = ref.points.dropna(subset=["bpp", metric.column])
        style = codec_style(ref.style_key)
        ax.plot(curve["bpp"], curve[metric.column], linestyle=PUBLISHED_LINESTYLE, markerfacecolor="none",
                label=f"{ref.label} (published)", **style)
        drawn += 1
    ax.set_xlabel("Rate [bpp]")
    ax.set_ylabel(metric.axis_label)
    ax.set_xlim(left=0)
    if legend and drawn:
        ax.legend(loc="best")
    return drawn


def plot_rd(points: pd.DataFrame, metrics: Sequence[MetricSpec], out_dir: str | Path,
            formats: Sequence[str] = ("pdf", "png"), width: float = COLUMN_WIDTH,
            published: dict[str, list[PublishedCurve]] | None = None, prefix: str = "rd") -> list[Path]:
    """One figure per (dataset, metric): ``<out_dir>/<prefix>_<dataset>_<metric>.<fmt>``.

    Each figure is exactly ``width`` inches wide (3.3: a column, 6.9: a page) at a 4:3 aspect, so it drops into
    a paper without rescaling and its fonts keep their nominal size.
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    published = published or {}
    for dataset, per_dataset in points.groupby("dataset", sort=True):
        for metric in metrics:
            if metric.column not in per_dataset or per_dataset[metric.column].notna().sum() == 0:
                log.warning("%s: no %s values; no figure", dataset, metric.name)
                continue
            with paper_style(width):
                import matplotlib.pyplot as plt

                fig, ax = plt.subplots(figsize=(width, width * 0.75), layout="constrained")
                rd_axes(ax, per_dataset, metric, published.get(dataset, []))
                ax.set_title(str(dataset))
                written += save_figure(fig, out_dir / f"{prefix}_{_safe(dataset)}_{_safe(metric.name)}", formats)
    return written


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))
