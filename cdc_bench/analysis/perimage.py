"""BD-rate of each image against the anchor: "CDC wins on 20 of 24 images" in one command, and its figure."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import MetricInfo
from ..store.key import inside, safe_file_stem
from .bdrate import _bd_functions, _transform, curve_pairs, per_image_matrices
from .curves import source_column
from ..plots.style import COLUMN_WIDTH, codec_style, paper_style, save_figure


def per_image_bd(points: pd.DataFrame, frame: pd.DataFrame, anchor: str, metrics: Sequence[MetricInfo],
                 method: str = "pchip", bpp_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """One row per (dataset, curve, metric, image): that image's BD-rate (%) against the anchor's curve on the
    same image. NaN (with the reason in ``note``) where the image's curves cannot be compared."""
    rate_fn, _ = _bd_functions(method, bpp_range)
    rows = []
    for dataset, anchor_label, a, label, curve in curve_pairs(points, anchor):
        for m in metrics:
            if m.dataset_level or m.column not in curve:
                continue
            src = source_column(m)
            ma = per_image_matrices(frame, a.dropna(subset=[m.column]), m.column, src)
            mt = per_image_matrices(frame, curve.dropna(subset=[m.column]), m.column, src)
            if ma is None or mt is None:
                continue
            tf = _transform(m)
            for image in ma[0].index.intersection(mt[0].index):
                r = rate_fn(ma[0].loc[image].to_numpy(), tf(ma[1].loc[image].to_numpy()),
                            mt[0].loc[image].to_numpy(), tf(mt[1].loc[image].to_numpy()))
                rows.append({"dataset": dataset, "anchor": anchor_label, "codec": label, "metric": m.name,
                             "metric_label": m.label, "image": image, "bd_rate_pct": r.value, "note": r.note})
    return pd.DataFrame(rows, columns=["dataset", "anchor", "codec", "metric", "metric_label", "image",
                                       "bd_rate_pct", "note"])


def wins(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, codec, metric): images where the codec needs fewer bits than the anchor, of those compared."""
    valid = per_image.dropna(subset=["bd_rate_pct"])
    out = valid.groupby(["dataset", "anchor", "codec", "metric"], sort=True)["bd_rate_pct"].agg(
        wins=lambda s: int((s < 0).sum()), images="count", median="median").reset_index()
    total = per_image.groupby(["dataset", "codec", "metric"])["image"].nunique().rename("of").reset_index()
    return out.merge(total, on=["dataset", "codec", "metric"], how="left")


def summary_lines(per_image: pd.DataFrame) -> list[str]:
    lines = []
    for _, row in wins(per_image).iterrows():
        skipped = int(row["of"]) - int(row["images"])
        lines.append(f"{row['dataset']}, {row['metric']}: {row['codec']} needs fewer bits than {row['anchor']} on "
                     f"{row['wins']} of {row['images']} images (median BD-rate {row['median']:+.1f}%)"
                     + (f"; {skipped} images not comparable" if skipped else ""))
    return lines


def plot_per_image(per_image: pd.DataFrame, stem: str | Path, formats: Sequence[str] = ("pdf", "png"),
                   width: float = COLUMN_WIDTH) -> list[Path]:
    """One figure per (dataset, metric): each curve's per-image BD-rates as dots over a box, 0 marked, and
    "wins k/n" beside each row. Written to ``<stem>_<dataset>_<metric>.<fmt>``."""
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
            ax.set_yticks(range(len(codecs)), codecs)
            ax.set_ylim(-0.6, len(codecs) - 0.4)
            label = per["metric_label"].iloc[0]
            ax.set_xlabel(f"BD-rate {label} per image vs {per['anchor'].iloc[0]} [%] (negative: fewer bits)")
            ax.set_title(f"{dataset}: {per['image'].nunique()} images")
            stem_path = Path(stem)
            written += save_figure(fig, inside(stem_path.parent, f"{stem_path.name}_{safe_file_stem(dataset)}_"
                                               f"{safe_file_stem(metric)}"), formats)
    return written
