"""BD-rate of each image against the anchor: "CDC wins on 20 of 24 images" in one command, and its figure."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..metrics import MetricInfo
from .bdrate import _bd_functions, _transform, curve_pairs, per_image_matrices
from .curves import source_column


def per_image_bd(points: pd.DataFrame, frame: pd.DataFrame, anchor: str, metrics: Sequence[MetricInfo],
                 method: str = "pchip", bpp_range: tuple[float, float] | None = None,
                 include_unmet: bool = False) -> pd.DataFrame:
    """One row per (dataset, curve, metric, image): that image's BD-rate (%) against the anchor's curve on the
    same image. NaN (with the reason in ``note``) where the image's curves cannot be compared."""
    from .matched import drop_unmet

    points, _ = drop_unmet(points, include_unmet)   # matched points that missed their target: not compared
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
