"""Rate-quality curves: bpp against each metric, one line per (codec, options), published curves dashed.

A figure never misleads by omission: a subset run is titled "kodak (4 of 24 images)", full-dataset published
curves drawn over a subset get a visible warning, random-weights runs say so in the legend, FID/KID carry their
protocol and patch count (and are flagged below 2048 patches), and bootstrap intervals are drawn as bands.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..store.key import file_stem
from ..metrics import MetricInfo
from ..analysis.curves import (dataset_level_notes, dataset_title, legend_label, source_column, subset_warning,
                               to_db)
from ..analysis.matched import UNMET_MARK, is_unmet, unmet_notes
from ..analysis.published import PublishedCurve
from .captions import RATE_TEXT, interval_text, preprocess_text, sentences
from .style import COLUMN_WIDTH, OPTION_LINESTYLES, PUBLISHED_LINESTYLE, codec_style, paper_style, save_figure

log = logging.getLogger(__name__)
WARN_COLOR = "#B00020"


def rd_axes(ax, points: pd.DataFrame, metric: MetricInfo, published: Sequence[PublishedCurve] = (),
            legend: bool = True, ci: bool = True) -> int:
    """Draw the curves of one dataset and one metric on ``ax``; returns how many curves were drawn.

    ``points`` is :func:`cdc_bench.analysis.curves.rd_points` for one dataset. With ``ci`` and interval columns
    (``<column>_lo``/``_hi``), each curve gets a band (a single point gets an error bar).
    """
    drawn = 0
    option_index: dict[str, int] = {}
    lo, hi = f"{metric.column}_lo", f"{metric.column}_hi"
    for (codec, _label), curve in points.groupby(["codec", "label"], sort=True):  # a label names one curve
        curve = curve.dropna(subset=["bpp", metric.column]).sort_values("bpp")
        if curve.empty:
            continue
        # Several option sets of one codec share its colour and marker; line style tells them apart.
        k = option_index.setdefault(codec, 0)
        option_index[codec] += 1
        style = codec_style(codec)
        label = curve["label"].iloc[0]
        random = "[random weights]" in label
        ax.plot(curve["bpp"], curve[metric.column], linestyle=OPTION_LINESTYLES[k % len(OPTION_LINESTYLES)],
                label=legend_label(label, codec), markerfacecolor="white" if random else style["color"], **style)
        std = f"{metric.column}_std"   # KID: the std over its subsets, drawn as ± error bars
        if ci and std in curve and curve[std].notna().any() and not (lo in curve and curve[lo].notna().any()):
            ax.errorbar(curve["bpp"], curve[metric.column], yerr=curve[std].fillna(0), fmt="none",
                        ecolor=style["color"], elinewidth=0.8, capsize=2)
        if ci and lo in curve and hi in curve and curve[lo].notna().any():
            if len(curve) > 1:
                ax.fill_between(curve["bpp"], curve[lo], curve[hi], color=style["color"], alpha=0.18,
                                linewidth=0)
            else:
                ax.errorbar(curve["bpp"], curve[metric.column],
                            yerr=[curve[metric.column] - curve[lo], curve[hi] - curve[metric.column]],
                            fmt="none", ecolor=style["color"], elinewidth=0.8, capsize=2)
        missed = curve[is_unmet(curve)]
        if len(missed):   # matched-bitrate points above their target: a red cross over the marker
            ax.plot(missed["bpp"], missed[metric.column], linestyle="none", marker="x", color=WARN_COLOR,
                    markersize=6, markeredgewidth=1.0, zorder=5)
        drawn += 1
    for ref in published:
        ref_points = ref.points
        source = source_column(metric)
        if source != metric.column and source in ref_points:   # MS-SSIM in dB, from the file's linear values
            ref_points = ref_points.assign(**{metric.column: to_db(ref_points[source])})
        if metric.column not in ref_points or ref_points[metric.column].notna().sum() == 0:
            log.info("%s has no %s values; not drawn on that axis", ref.legend, metric.name)
            continue
        curve = ref_points.dropna(subset=["bpp", metric.column])
        style = codec_style(ref.style_key)
        ax.plot(curve["bpp"], curve[metric.column], linestyle=PUBLISHED_LINESTYLE, markerfacecolor="none",
                label=ref.legend, **style)
        drawn += 1
    ax.set_xlabel("Rate [bpp]")
    ax.set_ylabel(_axis_label(points, metric))
    ax.set_xlim(left=0)
    if legend and drawn:
        ax.legend(loc="best")
    return drawn


def _axis_label(points: pd.DataFrame, metric: MetricInfo) -> str:
    protocol = points.get(f"{metric.column}_protocol")
    if metric.dataset_level and protocol is not None and protocol.notna().any():
        return f"{metric.label} ({protocol.dropna().iloc[0]}) {metric.arrow}".strip()
    return metric.axis_label


def band_text(points: pd.DataFrame, metric: MetricInfo, boot=None, ci: bool = True, what: str = "bands") -> str:
    """What the bands of ``metric``'s curves are: the bootstrap used for per-image means; FID/KID's own spread."""
    if metric.dataset_level:
        notes = [n for n in dataset_level_notes(points, [metric]) if n.startswith(metric.label)]
        return notes[0] if notes else f"{metric.label}: no interval"
    lo = f"{metric.column}_lo"
    if not ci or lo not in points or points[lo].isna().all():
        return f"No {what}: intervals were not computed"
    return (interval_text(boot, what) if boot is not None
            else f"{what[0].upper()}{what[1:]}: bootstrap confidence interval of the mean over images")


def rd_caption(title: str, points: pd.DataFrame, metric: MetricInfo, boot=None, ci: bool = True,
               published: Sequence[PublishedCurve] = (), notes: Sequence[str] = ()) -> str:
    """The caption of one rate-quality figure (sidecar file, command output, report)."""
    n = int(points["n_images"].max()) if "n_images" in points and len(points) else 0
    return sentences([f"{title}: {metric.axis_label} against rate; each point is the mean over the images of one "
                      f"rate point ({n} images), one line per codec and option set",
                      band_text(points, metric, boot, ci),
                      preprocess_text(points.get("preprocess", ())), RATE_TEXT,
                      "Dashed: published curves, as their authors report them" if published else None, *notes])


def figure_notes(fig, notes: Sequence[str], width: float, color: str = WARN_COLOR) -> None:
    """Write notes under the axes, wrapped to the figure width, in a colour that is read as a warning."""
    if not notes:
        return
    chars = int(width * 17)  # ~6 pt text
    text = "\n".join(textwrap.fill(f"⚠ {n}", chars) for n in notes)
    fig.get_layout_engine().set(h_pad=0.04)
    fig.supxlabel(text, fontsize=5.5, color=color, ha="left", x=0.01, multialignment="left")


def plot_rd(points: pd.DataFrame, metrics: Sequence[MetricInfo], out_dir: str | Path,
            formats: Sequence[str] = ("pdf", "png"), width: float = COLUMN_WIDTH,
            published: dict[str, list[PublishedCurve]] | None = None, prefix: str = "rd", *, ci: bool = True,
            xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None, runs=(),
            warnings_out: list[str] | None = None, boot=None) -> list[Path]:
    """One figure per (dataset, metric): ``<out_dir>/<prefix>_<dataset>_<metric>.<fmt>``.

    Each figure is exactly ``width`` inches wide (3.3: a column, 6.9: a page) at a 4:3 aspect, so it drops into
    a paper without rescaling and its fonts keep their nominal size. Warnings drawn in a figure are also
    appended to ``warnings_out`` (once each) for the command to print. Each figure's caption (:func:`rd_caption`,
    naming ``boot``, the bootstrap of the bands) is written beside it.
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    published = published or {}
    for dataset, per_dataset in points.groupby("dataset", sort=True):
        title, subset = dataset_title(str(dataset), int(per_dataset["n_images"].max()), runs,
                                      per_dataset.get("preprocess", ()))
        refs = published.get(dataset, [])
        for metric in metrics:
            if metric.column not in per_dataset or per_dataset[metric.column].notna().sum() == 0:
                log.warning("%s: no %s values; no figure", dataset, metric.name)
                continue
            notes = [n for n in (subset_warning(subset, refs),) if n]
            notes += [n for n in dataset_level_notes(per_dataset, [metric]) if "UNRELIABLE" in n]
            missed = unmet_notes(per_dataset.dropna(subset=[metric.column]))
            notes += [f"red {UNMET_MARK}: matched-bitrate target not met"] + missed if missed else []
            with paper_style(width):
                import matplotlib.pyplot as plt

                fig, ax = plt.subplots(figsize=(width, width * 0.75), layout="constrained")
                rd_axes(ax, per_dataset, metric, refs, ci=ci)
                ax.set_title(title)
                if xlim:
                    ax.set_xlim(*xlim)
                if ylim:
                    ax.set_ylim(*ylim)
                figure_notes(fig, notes, width)
                caption = rd_caption(title, per_dataset, metric, boot, ci, refs, notes)
                stem = out_dir / f"{prefix}_{file_stem(dataset)}_{file_stem(metric.name)}"
                written += save_figure(fig, stem, formats, caption)
            if warnings_out is not None:
                warnings_out += [f"{title}, {metric.name}: {n}" for n in notes]
    return written

