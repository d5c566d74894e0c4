"""From result rows to curves: keep the rows that succeeded, average per rate point, name each curve."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pandas as pd

from ..metrics import MetricInfo
from ..store.key import CURVE, options_dict
from .summary import RANDOM_WEIGHTS, SOURCE, group_columns, is_random_weights

log = logging.getLogger(__name__)



# Figures and tables read the metric registry's own metadata (label, unit, precision, direction, dataset-level);
# the alias keeps the name the plotting code has always used.

# Display columns computed from a stored one: MS-SSIM in dB, as CompressAI plots it.
DERIVED = {"ms_ssim_db": "ms_ssim"}


def source_column(spec: MetricInfo) -> str:
    """The results column a metric's values come from (``ms_ssim`` for the dB display of MS-SSIM)."""
    return DERIVED.get(spec.column, spec.column)


def metric_spec(name: str, ms_ssim_db: bool = False) -> MetricInfo:
    """Resolve a metric by CLI name (``ms-ssim``) or column (``ms_ssim``) through the metric registry.

    Direction, unit, precision and label come from :mod:`cdc_bench.metrics`, never from this module. With
    ``ms_ssim_db``, MS-SSIM is shown as CompressAI plots it: -10 log10(1 - MS-SSIM) in dB (column
    ``ms_ssim_db``, derived from dataset means by :func:`add_derived`).
    """
    from ..metrics import lookup_metric

    info = lookup_metric(name)
    if ms_ssim_db and info.column == "ms_ssim":
        return replace(info, column="ms_ssim_db", unit="dB", precision=2, range=(0.0, None))
    return info


def to_db(values):
    """MS-SSIM -> dB as CompressAI's plot does: -10 log10(1 - x) (inf at x = 1)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return -10.0 * np.log10(1.0 - np.asarray(values, dtype=float))


def add_derived(points: pd.DataFrame, metrics) -> pd.DataFrame:
    """Add the display columns of derived metrics (MS-SSIM in dB) from the dataset means and their bounds."""
    points = points.copy()
    for spec in metrics:
        source = DERIVED.get(spec.column)
        if source is None:
            continue
        for suffix in ("", "_lo", "_hi"):
            if f"{source}{suffix}" in points:
                points[f"{spec.column}{suffix}"] = to_db(points[f"{source}{suffix}"])
    return points


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
    opts = options_dict(options)  # StoreError for options that are not a JSON object: the readers refuse them
    return ", ".join(f"{k}={v}" for k, v in sorted(opts.items()))


def curve_label(codec: str, options: str | dict | None) -> str:
    """How a (codec, options) pair is named in legends and tables: ``cdc (steps=65)``."""
    opts = options_text(options)
    return f"{codec} ({opts})" if opts else codec


#: the columns besides the options that tell two curves of one codec apart, in the order a legend names them
_CURVE_EXTRA = [k for k in CURVE if k not in ("dataset", "codec", "options")] + [SOURCE]


def curve_labels(frame: pd.DataFrame) -> list[str]:
    """Legend names for the rows' curves (key columns :data:`cdc_bench.store.key.CURVE`, plus the results folder
    when several are shown) that say no more than needed, and never hide random weights.

    The runner stores every option with its default (``hevc`` becomes ``preset=veryslow, chroma=444, ...``);
    a legend only needs what differs between the curves of one codec (an option, the preprocessing, the device,
    the folder), and nothing when the codec has a single curve. A random-weights run always ends in
    ``[random weights]``, so no legend, table row or report section can pass it off as a real curve.
    """
    if frame.empty:
        return []
    extra = [c for c in _CURVE_EXTRA if c in frame]
    idents = [tuple(str(v) for v in vals) for vals in zip(frame["codec"], frame["options"], *(frame[c] for c in extra))]
    by_codec: dict[str, list[tuple]] = {}
    for ident in dict.fromkeys(idents):
        by_codec.setdefault(ident[0], []).append(ident)
    labels: dict[tuple, str] = {}
    for codec, curves in by_codec.items():
        described = [{**options_dict(c[1]), **dict(zip(extra, c[2:]))} for c in curves]
        keys = sorted({k for d in described for k in d})
        differ = [k for k in keys if len({json.dumps(d.get(k), sort_keys=True, default=str) for d in described}) > 1]
        for ident, d in zip(curves, described):
            label = curve_label(codec, {k: d.get(k) for k in differ if k != "weights"}) if len(curves) > 1 \
                else codec
            labels[ident] = f"{label} [{RANDOM_WEIGHTS}]" if is_random_weights(d) else label
    return [labels[i] for i in idents]


def display_name(codec: str) -> str:
    """The name a legend gives ``codec``: its class's ``display_name`` (hevc: "x265 with BPG's settings (HEIF)"), or
    the name itself for a codec not installed here or a published curve."""
    try:
        from ..codecs.registry import get_codec_class

        return get_codec_class(str(codec)).display_name or str(codec)
    except Exception:  # noqa: BLE001 - a legend never fails on a codec this install lacks
        return str(codec)


def legend_label(label: str, codec: str) -> str:
    """A curve's label (:func:`curve_labels`) as a legend shows it: the codec's display name in place of its name.
    The label itself stays the curve's identifier (``--anchor hevc``, tables)."""
    label, codec = str(label), str(codec)
    if label == codec or label.startswith(f"{codec} "):
        return display_name(codec) + label[len(codec):]
    return label


def short_labels(pairs) -> dict[tuple[str, str], str]:
    """:func:`curve_labels` of bare (codec, options) pairs, keyed by the pair."""
    pairs = [(str(c), str(o)) for c, o in pairs]
    return dict(zip(pairs, curve_labels(pd.DataFrame(pairs, columns=["codec", "options"]))))


def dataset_size(name: str) -> int | None:
    """How many images the named dataset has (Kodak: 24), from the dataset registry; None if unknown."""
    try:
        from ..datasets.manifest import builtin_manifests

        manifests = builtin_manifests()
        if name in manifests:
            return int(manifests[name].count)
        if name == "default":
            from ..datasets import EmbeddedDataset

            return len(EmbeddedDataset().images())
    except Exception:  # a title must never fail a figure
        return None
    return None


def dataset_title(name: str, n_images: int, runs=(), preprocess=()) -> tuple[str, bool]:
    """``("kodak (4 of 24 images)", True)`` for a subset run, ``("kodak", False)`` for the whole dataset.

    The full size comes from the dataset registry, else from a run manifest that recorded it. One preprocessing
    other than ``none`` shared by all curves is named too (``default, center-crop:256``); several are in the labels.
    """
    kinds = {str(p) for p in preprocess if isinstance(p, str)}
    if len(kinds) == 1 and kinds != {"none"}:
        title, subset = dataset_title(name, n_images, runs)
        return f"{title}, {kinds.pop()}", subset
    total = dataset_size(str(name))
    if total is None:
        for manifest in runs:
            sizes = (manifest.get("settings") or {}).get("dataset_sizes") or {}
            total = sizes.get(str(name), total)
    if total is not None and 0 < n_images < total:
        return f"{name} ({n_images} of {total} images)", True
    return str(name), False


def rd_points(frame: pd.DataFrame, metrics: list[MetricInfo], dataset_metrics: pd.DataFrame | None = None,
              boot=None) -> pd.DataFrame:
    """Dataset mean of bpp and each metric per rate point of each (dataset, codec, options).

    Columns: dataset, codec, options, label, quality, bpp, <metric columns>, n_images; with ``boot`` (a
    :class:`cdc_bench.analysis.stats.Bootstrap`) also ``<column>_lo``/``_hi``. Per-image metrics are averaged by
    :func:`cdc_bench.analysis.summary.dataset_means`; dataset-level ones (FID, KID) are taken from ``dataset_metrics``
    with their protocol, patch count and KID's subset std (``fid_protocol``, ``fid_n_patches``, ``kid_std``).
    Rows must already be filtered by :func:`ok_rows`.
    """
    from .summary import dataset_means

    sources = [source_column(m) for m in metrics if not m.dataset_level]
    per_image = list(dict.fromkeys(c for c in sources if c in frame))
    missing = [m.name for m in metrics if not m.dataset_level and source_column(m) not in frame]
    if missing:
        log.warning("no %s column in the results; those metrics are skipped", ", ".join(missing))
    if frame.empty:
        return pd.DataFrame(columns=group_columns(frame) + ["label", "bpp", "n_images"] + per_image)
    points = dataset_means(frame, ["bpp"] + per_image, boot).drop(columns="n_failed")
    from .matched import mark_unmet

    points = mark_unmet(points, frame)   # matched-bitrate points that missed their target (marked everywhere)
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
        keep = {"value": spec.column, "std": f"{spec.column}_std", "n_patches": f"{spec.column}_n_patches",
                "protocol": f"{spec.column}_protocol", "value_lo": f"{spec.column}_lo",
                "value_hi": f"{spec.column}_hi"}
        values = values[values["protocol"] == protocol]
        keys = [c for c in group_columns(points) if c in values]
        values = values[keys + [c for c in keep if c in values]].rename(columns=keep)
        points = points.merge(values, on=keys, how="left")
    points = add_derived(points, metrics)
    curve = [c for c in CURVE if c in points] + ([SOURCE] if SOURCE in points else [])
    counts = points.groupby(curve)["n_images"].transform("nunique")
    if (counts > 1).any():
        log.warning("some rate points average over fewer images than others (failed items); see n_images")
    points.insert(3, "label", curve_labels(points))
    return points.sort_values(["dataset", "label", "bpp"]).reset_index(drop=True)


from ..metrics.fid import MIN_FID_PATCHES  # noqa: E402 - one constant, with the metric it belongs to


def dataset_level_notes(points: pd.DataFrame, metrics) -> list[str]:
    """What a reader must know about FID/KID values: protocol, patch count, and when they are unreliable."""
    notes = []
    for spec in metrics:
        if not spec.dataset_level or spec.column not in points or points[spec.column].notna().sum() == 0:
            continue
        have = points.dropna(subset=[spec.column])
        protocol = have.get(f"{spec.column}_protocol", pd.Series(dtype=object)).dropna()
        patches = have.get(f"{spec.column}_n_patches", pd.Series(dtype=float)).dropna()
        text = f"{spec.label}: protocol {protocol.iloc[0] if len(protocol) else '?'}"
        if len(patches):
            lo, hi = int(patches.min()), int(patches.max())
            text += f", {lo} patches" if lo == hi else f", {lo}-{hi} patches"
            if lo < MIN_FID_PATCHES and spec.column == "fid":
                text += (f"; UNRELIABLE: fewer than {MIN_FID_PATCHES} patches (Inception's feature dimension), "
                         "so the covariance is singular and the value is biased upward")
            elif lo < MIN_FID_PATCHES:
                text += (f"; UNRELIABLE: fewer than {MIN_FID_PATCHES} patches; compare only with the same patch "
                         "count, and read the subset std")
        if spec.column == "kid" and f"{spec.column}_std" in have:
            from ..metrics.frechet import KID_SUBSETS, kid_subset_size

            sizes = sorted({kid_subset_size(int(n), int(n)) for n in patches})
            size = (str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}") if sizes else "half the"
            text += (f"; ± is the std over {KID_SUBSETS} random subsets of {size} patches each (half the set, "
                     "at most 1000, drawn without replacement as torch-fidelity does)")
        if spec.column == "fid":
            text += ("; interval: bootstrap over patches" if "fid_lo" in have and have["fid_lo"].notna().any()
                     else "; no interval (FID has no per-image values)")
        notes.append(text)
    return notes


def subset_warning(title_is_subset: bool, published: list) -> str | None:
    """The warning shown when full-dataset published curves are drawn over a subset run."""
    if title_is_subset and any(getattr(ref, "published", True) for ref in published):
        return ("published curves are full-dataset means; this run covers a subset of the images, "
                "so the comparison is not like for like")
    return None
