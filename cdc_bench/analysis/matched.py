"""Matched-bitrate rate points whose target was not met, marked wherever a number is shown.

A ``--target-bpp 1.0`` row that the codec could not bring below 1 bpp (its lowest rate gives 3.86 bpp) keeps the
rate-point text ``bpp<=1``; every table, figure and export reads :func:`mark_unmet`'s columns to say so, and BD
computations leave such points out unless asked (:func:`drop_unmet`).
"""

from __future__ import annotations

import pandas as pd

UNMET_COLUMN = "target_unmet"   # per rate point: how many images missed the target (0: all met)
UNMET_MARK = "✗"


def _met(frame: pd.DataFrame) -> pd.Series | None:
    if "match_met" not in frame or "target_bpp" not in frame:
        return None
    matched = pd.to_numeric(frame["target_bpp"], errors="coerce").notna()
    met = frame["match_met"].map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v))
                                 else bool(v) if not isinstance(v, str) else v.lower() in ("1", "true"))
    return (matched & met.eq(False)).astype(int)


def mark_unmet(points: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``points`` (dataset means per rate point) with :data:`UNMET_COLUMN`: images whose target was missed."""
    unmet = _met(frame)
    points = points.copy()
    if unmet is None or points.empty:
        points[UNMET_COLUMN] = 0
        return points
    keys = [k for k in ("dataset", "codec", "options", "quality", "preprocess", "device") if k in frame and k in points]
    counts = frame.assign(_unmet=unmet, quality=frame["quality"].astype(str)).groupby(keys)["_unmet"].sum()
    counts = counts.rename(UNMET_COLUMN).reset_index()
    merged = points.assign(_q=points["quality"].astype(str)).merge(
        counts.rename(columns={"quality": "_q"}), on=[k if k != "quality" else "_q" for k in keys], how="left")
    points[UNMET_COLUMN] = merged[UNMET_COLUMN].fillna(0).astype(int).to_numpy()
    return points


def is_unmet(points: pd.DataFrame) -> pd.Series:
    if UNMET_COLUMN not in points:
        return pd.Series(False, index=points.index)
    return points[UNMET_COLUMN].fillna(0).astype(int) > 0


def unmet_notes(points: pd.DataFrame, left_out: bool | None = None) -> list[str]:
    """One line per rate point that missed its target: ``cdc bpp<=1: target not met on 1 of 1 images
    (3.86 bpp)``; with ``left_out``, whether BD used it."""
    notes = []
    for _, row in points[is_unmet(points)].iterrows():
        label = row["label"] if "label" in row else row["codec"]
        text = (f"{UNMET_MARK} {label} {row['quality']}: target not met on {int(row[UNMET_COLUMN])} of "
                f"{int(row.get('n_images', 0) or 0)} images ({row['bpp']:.3g} bpp on average)")
        if left_out is True:
            text += "; left out of BD (--include-unmet keeps it)"
        elif left_out is False:
            text += "; kept in BD (--include-unmet)"
        notes.append(text)
    return notes


def drop_unmet(points: pd.DataFrame, include: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The points BD may use, and the notes that say which were left out (or kept, with ``include``)."""
    notes = unmet_notes(points, left_out=not include)
    return (points if include else points[~is_unmet(points)]), notes
