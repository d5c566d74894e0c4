"""From result rows to curves: keep the rows that succeeded, average per rate point, name each curve."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pandas as pd

log = logging.getLogger(__name__)

GROUP = ["dataset", "codec", "options", "quality"]


@dataclass(frozen=True)
class MetricSpec:
    """What a figure or table needs to know about a metric: where it is and which way is better."""

    name: str
    column: str
    label: str
    lower_better: bool | None   # None: unknown (a column no registered metric claims)
    dataset_level: bool = False

    @property
    def arrow(self) -> str:
        return "" if self.lower_better is None else ("↓" if self.lower_better else "↑")

    @property
    def axis_label(self) -> str:
        """e.g. ``PSNR [dB] ↑``: the direction is written on the axis."""
        return f"{self.label} {self.arrow}".strip()


def metric_spec(name: str) -> MetricSpec:
    """Resolve a metric by CLI name (``ms-ssim``) or column (``ms_ssim``) through the metric registry.

    Direction and label come from :mod:`cdc_bench.metrics`, never from this module.
    """
    from ..metrics import lookup_metric

    info = lookup_metric(name)
    return MetricSpec(info.name, info.column, info.unit_label, info.lower_better, info.dataset_level)


def ok_rows(frame: pd.DataFrame, what: str = "results") -> tuple[pd.DataFrame, int]:
    """Rows with status ``ok`` (and a bpp); also returns how many were dropped, which is logged."""
    if frame.empty:
        return frame, 0
    keep = frame["status"].eq("ok") if "status" in frame else pd.Series(True, index=frame.index)
    if "bpp" in frame:
        keep &= frame["bpp"].notna()
    dropped = int((~keep).sum())
    if dropped:
        log.info("%s: dropped %d of %d rows whose status is not 'ok'", what, dropped, len(frame))
    return frame[keep].copy(), dropped


def options_text(options: str | dict | None) -> str:
    """``{"steps": 65}`` -> ``steps=65``; empty options -> ``""``."""
    if options is None or (isinstance(options, float) and pd.isna(options)):
        return ""
    if isinstance(options, str):
        try:
            options = json.loads(options) if options.strip() else {}
        except json.JSONDecodeError:
            return options
    if not isinstance(options, dict):
        return str(options)
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()))


def curve_label(codec: str, options: str | dict | None) -> str:
    """How a (codec, options) pair is named in legends and tables: ``cdc (steps=65)``."""
    opts = options_text(options)
    return f"{codec} ({opts})" if opts else codec


def _options_dict(options: str | dict | None) -> dict:
    if isinstance(options, dict):
        return options
    try:
        value = json.loads(options) if isinstance(options, str) and options.strip() else {}
    except json.JSONDecodeError:
        return {"options": options}
    return value if isinstance(value, dict) else {"options": value}


def short_labels(pairs) -> dict[tuple[str, str], str]:
    """Legend names for (codec, options) pairs that say no more than needed.

    The runner stores every option with its default (``hevc`` becomes ``preset=veryslow, chroma=444, ...``);
    a legend only needs the options that differ between the option sets of one codec, and none when the codec
    has a single option set.
    """
    by_codec: dict[str, list[str]] = {}
    for codec, options in dict.fromkeys((str(c), str(o)) for c, o in pairs):
        by_codec.setdefault(codec, []).append(options)
    labels = {}
    for codec, variants in by_codec.items():
        if len(variants) == 1:
            labels[(codec, variants[0])] = codec
            continue
        dicts = [_options_dict(v) for v in variants]
        keys = sorted({k for d in dicts for k in d})
        differ = [k for k in keys if len({json.dumps(d.get(k), sort_keys=True, default=str) for d in dicts}) > 1]
        for options, d in zip(variants, dicts):
            labels[(codec, options)] = curve_label(codec, {k: d.get(k) for k in differ})
    return labels


def rd_points(frame: pd.DataFrame, metrics: list[MetricSpec],
              dataset_metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """Dataset mean of bpp and each metric per rate point of each (dataset, codec, options).

    Columns: dataset, codec, options, label, quality, bpp, <metric columns>, n_images. Per-image metrics are the
    arithmetic mean over images (CompressAI's convention); dataset-level ones (FID) are taken from
    ``dataset_metrics`` (its ``metric`` column names the metric). Rows must already be filtered by
    :func:`ok_rows`.
    """
    per_image = [m.column for m in metrics if not m.dataset_level and m.column in frame]
    missing = [m.name for m in metrics if not m.dataset_level and m.column not in frame]
    if missing:
        log.warning("no %s column in the results; those metrics are skipped", ", ".join(missing))
    if frame.empty:
        return pd.DataFrame(columns=GROUP + ["label", "bpp", "n_images"] + per_image)
    agg = frame.groupby(GROUP, sort=False).agg(
        bpp=("bpp", "mean"), n_images=("image", "nunique"), **{c: (c, "mean") for c in per_image})
    points = agg.reset_index()
    for spec in metrics:
        if not spec.dataset_level:
            continue
        if dataset_metrics is None or dataset_metrics.empty:
            log.warning("no dataset-level %s values in the results", spec.name)
            continue
        values = dataset_metrics[dataset_metrics["metric"].str.lower() == spec.name.lower()]
        if values.empty:
            continue
        # One protocol per figure: the first one stored (FID/256 when the runner used its default).
        protocol = values["protocol"].iloc[0]
        values = values[values["protocol"] == protocol][GROUP + ["value"]].rename(columns={"value": spec.column})
        # Join on the text of quality: the store makes it numeric only where every value is a number.
        keys = ["dataset", "codec", "options", "_q"]
        points = points.assign(_q=points["quality"].astype(str)).merge(
            values.assign(_q=values["quality"].astype(str)).drop(columns="quality"), on=keys, how="left"
        ).drop(columns="_q")
    counts = points.groupby(["dataset", "codec", "options"])["n_images"].transform("nunique")
    if (counts > 1).any():
        log.warning("some rate points average over fewer images than others (failed items); see n_images")
    labels = short_labels(zip(points["codec"], points["options"]))
    points.insert(3, "label", [labels[(str(c), str(o))] for c, o in zip(points["codec"], points["options"])])
    return points.sort_values(["dataset", "label", "bpp"]).reset_index(drop=True)

