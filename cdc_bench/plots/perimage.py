"""The per-image BD-rate figure: one dot per image and codec against the anchor (the numbers are
:mod:`cdc_bench.analysis.perimage`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..analysis.curves import legend_label
from ..store.key import file_stem, inside
from .captions import RATE_TEXT, preprocess_text, sentences
from .style import COLUMN_WIDTH, codec_style, paper_style, save_figure


def plot_per_image(per_image: pd.DataFrame, stem: str | Path, formats: Sequence[str] = ("pdf", "png"),
                   width: float = COLUMN_WIDTH, preprocess: Sequence[str] = ()) -> list[Path]:
    """One figure per (dataset, metric): each curve's per-image BD-rates as dots over a box, 0 marked, and
    "wins k/n" beside each row. Written to ``<stem>_<dataset>_<metric>.<fmt>``, with its caption beside it
    (``preprocess``: the preprocessing of the rows the BD-rates come from)."""
    written = []
    for (dataset, metric), per in per_image.dropna(subset=["bd_rate_pct"]).groupby(["dataset", "metric"]):
        codecs = sorted(per["codec"].unique())
        with paper_style(width):
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(width, 0.5 + 0.38 * len(codecs) + 0.5), layout="constrained")
            rng = np.random.default_rng(0)   # vertical jitter only, so dots of equal value stay readable
            for i, codec in enumerate(codecs):
                values = per.loc[per["codec"] == codec, "bd_rate_pct"].to_numpy()
                style = codec_style(codec.split(" ")[0])
                ax.boxplot(values, positions=[i], orientation="horizontal", widths=0.5, showfliers=False,
                           medianprops={"color": style["color"]}, boxprops={"linewidth": 0.6},
                           whiskerprops={"linewidth": 0.6}, capprops={"linewidth": 0.6})
                ax.plot(values, i + rng.uniform(-0.15, 0.15, len(values)), linestyle="none", alpha=0.8,
                        markersize=3, **style)
                ax.annotate(f"wins {(values < 0).sum()}/{len(values)}", (1.01, i), xycoords=("axes fraction",
                            "data"), va="center", fontsize=6)
            ax.axvline(0, color="black", linewidth=0.6)
            ax.set_yticks(range(len(codecs)), [legend_label(c, c.split(" ")[0]) for c in codecs])
            ax.set_ylim(-0.6, len(codecs) - 0.4)
            label = per["metric_label"].iloc[0]
            ax.set_xlabel(f"BD-rate {label} per image vs {per['anchor'].iloc[0]} [%] (negative: fewer bits)")
            ax.set_title(f"{dataset}: {per['image'].nunique()} images")
            caption = sentences([
                f"{dataset}: per-image BD-rate ({label}) of each codec against {per['anchor'].iloc[0]}, one dot per "
                f"image ({per['image'].nunique()} images, jittered vertically); box: quartiles and median, "
                "whiskers: the furthest image within 1.5 interquartile ranges; negative: fewer bits than the "
                "anchor; wins k/n: the images on which the codec needs fewer bits",
                preprocess_text(preprocess), RATE_TEXT])
            stem_path = Path(stem)
            written += save_figure(fig, inside(stem_path.parent, f"{stem_path.name}_{file_stem(dataset)}_"
                                               f"{file_stem(metric)}"), formats, caption)
    return written
