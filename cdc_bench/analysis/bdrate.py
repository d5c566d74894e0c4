"""BD-rate and BD-metric of every curve against an anchor, for every metric, via the ``bjontegaard`` package.

BD-rate: the average rate difference (in %) at equal quality over the quality range both curves cover;
negative means the codec needs fewer bits than the anchor. BD-metric: the average quality difference at equal
rate (in the metric's unit); its sign is good or bad according to the metric's direction, which the table
header says. Interpolation is PCHIP (the JCT-VC/JVET convention). Where curves do not overlap, or overlap only
partly, or quality is not monotonic in rate, the table says so instead of printing a number silently.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import MetricInfo
from .curves import source_column

MIN_OVERLAP = 0.75   # bjontegaard's own default: below it, a note says the result covers little of the range


@dataclass(frozen=True)
class BDResult:
    value: float          # NaN when it cannot be computed
    overlap: float        # shared fraction of the integration range (0..1)
    note: str = ""


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    total = max(a.max(), b.max()) - min(a.min(), b.min())
    shared = min(a.max(), b.max()) - max(a.min(), b.min())
    return max(shared, 0.0) / total if total > 0 else 1.0


def _strictly_monotonic(x: np.ndarray) -> bool:
    d = np.diff(x)
    return bool(np.all(d > 0) or np.all(d < 0))


def bd_rate(rate_anchor, metric_anchor, rate_test, metric_test, method: str = "pchip") -> BDResult:
    """BD-rate in % of ``test`` against ``anchor`` (points in any order)."""
    return _bd(rate_anchor, metric_anchor, rate_test, metric_test, method, rate=True)


def bd_metric(rate_anchor, metric_anchor, rate_test, metric_test, method: str = "pchip") -> BDResult:
    """BD-metric (BD-PSNR for PSNR) of ``test`` against ``anchor``, in the metric's unit."""
    return _bd(rate_anchor, metric_anchor, rate_test, metric_test, method, rate=False)


def _bd(ra, ma, rt, mt, method: str, rate: bool) -> BDResult:
    import bjontegaard as bd

    ra, ma, rt, mt = (np.asarray(v, dtype=float) for v in (ra, ma, rt, mt))
    # The package integrates over the sorted base variable: quality for BD-rate, log-rate for BD-metric.
    # Sort each curve by rate; it then needs strictly monotonic values along that base.
    oa, ot = np.argsort(ra), np.argsort(rt)
    ra, ma, rt, mt = ra[oa], ma[oa], rt[ot], mt[ot]
    if len(ra) < 2 or len(rt) < 2:
        return BDResult(float("nan"), 0.0, "needs at least 2 rate points per curve")
    if np.any(ra <= 0) or np.any(rt <= 0):
        return BDResult(float("nan"), 0.0, "rates must be positive")
    faults = [who for who, ok in (("anchor", _strictly_monotonic(ma) if rate else _strictly_monotonic(ra)),
                                  ("test", _strictly_monotonic(mt) if rate else _strictly_monotonic(rt))) if not ok]
    if faults:
        what = "quality not monotonic in rate" if rate else "repeated rates"
        return BDResult(float("nan"), 0.0, f"{what} ({' and '.join(faults)} curve)")
    overlap = _overlap(ma, mt) if rate else _overlap(np.log10(ra), np.log10(rt))
    if overlap == 0:
        axis = "quality" if rate else "rate"
        return BDResult(float("nan"), 0.0, f"no {axis} overlap with the anchor")
    # Sort by the base variable so the package never flips a curve the other way round.
    if rate:
        sa, st = np.argsort(ma), np.argsort(mt)
        ra, ma, rt, mt = ra[sa], ma[sa], rt[st], mt[st]
    fn = bd.bd_rate if rate else bd.bd_psnr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap warnings become the note below
        value = float(fn(ra, ma, rt, mt, method=method, require_matching_points=False, min_overlap=0))
    note = ""
    if overlap < MIN_OVERLAP:
        note = f"curves overlap on {overlap:.0%} of the {'quality' if rate else 'rate'} range"
    return BDResult(value, overlap, note)


def clip_curve(bpp, quality, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of a curve inside ``lo <= bpp <= hi``; ends inside the curve are interpolated (linear in
    log-rate), so every curve covers the same rate window and BD compares like with like."""
    bpp, quality = np.asarray(bpp, dtype=float), np.asarray(quality, dtype=float)
    order = np.argsort(bpp)
    bpp, quality = bpp[order], quality[order]
    inside = (bpp >= lo) & (bpp <= hi)
    xs, ys = list(bpp[inside]), list(quality[inside])
    for end in (lo, hi):
        if bpp[0] < end < bpp[-1] and end not in xs:
            xs.append(end)
            ys.append(float(np.interp(np.log(end), np.log(bpp), quality)))
    order = np.argsort(xs)
    return np.asarray(xs)[order], np.asarray(ys)[order]


def bd_table(points: pd.DataFrame, anchor: str, metrics: Sequence[MetricInfo], method: str = "pchip", *,
             frame: pd.DataFrame | None = None, boot=None, bpp_range: tuple[float, float] | None = None,
             include_unmet: bool = False) -> pd.DataFrame:
    """Tidy BD table: one row per (dataset, curve, metric) with bd_rate_pct, bd_metric, overlaps and notes.

    ``points`` is :func:`cdc_bench.analysis.curves.rd_points`. ``anchor`` names a curve label (``hevc``,
    ``cdc (steps=65)``) or a codec that has exactly one option set in each dataset. With ``bpp_range`` both
    curves are clipped to that rate window first. With ``frame`` (the per-image rows) and ``boot`` (a
    :class:`cdc_bench.analysis.stats.Bootstrap`), each value gets a paired bootstrap interval over images
    (``*_lo``/``*_hi`` columns, level, resamples and seed recorded). Matched-bitrate points that missed their
    target are left out unless ``include_unmet``; column ``unmet`` says which (or that they were kept).
    """
    from .matched import drop_unmet, unmet_notes

    kept, _ = drop_unmet(points, include_unmet)
    rows = []
    for dataset, anchor_label, a, label, curve in curve_pairs(kept, anchor):
        for m in metrics:
            if m.column not in curve:
                continue
            ca = a.dropna(subset=[m.column])
            ct = curve.dropna(subset=[m.column])
            if len(ct) == 0 or len(ca) == 0:
                continue
            rate_fn, metric_fn = _bd_functions(method, bpp_range)
            r = rate_fn(ca["bpp"], ca[m.column], ct["bpp"], ct[m.column])
            q = metric_fn(ca["bpp"], ca[m.column], ct["bpp"], ct[m.column])
            row = {"dataset": dataset, "anchor": anchor_label, "method": method, "codec": label,
                   "metric": m.name, "metric_label": m.label, "unit": m.unit, "precision": m.precision,
                   "lower_better": m.lower_better, "scale": _scale(m), "bd_rate_pct": r.value, "bd_metric": q.value,
                   "quality_overlap": r.overlap, "rate_overlap": q.overlap,
                   "bpp_range": f"{bpp_range[0]:g}-{bpp_range[1]:g}" if bpp_range else "",
                   "note": "; ".join(n for n in (_tag("BD-rate", _name(r.note, anchor_label, label)),
                                                 _tag("BD-metric", _name(q.note, anchor_label, label))) if n)}
            if m.dataset_level:   # FID/KID: the protocol and patch count belong beside the number
                from .curves import dataset_level_notes

                extra = "; ".join(dataset_level_notes(pd.concat([a, curve]), [m]))
                row["note"] = "; ".join(n for n in (row["note"], extra) if n)
            if boot is not None and frame is not None and not m.dataset_level:
                row.update(_intervals(frame, ca, ct, m, boot, rate_fn, metric_fn))
            if frame is not None and not m.dataset_level:
                row.update(_wilcoxon(frame, ca, ct, m, rate_fn))
            mine = points[(points["dataset"] == dataset) & points["label"].isin([anchor_label, label])]
            row["unmet"] = " | ".join(unmet_notes(mine, left_out=not include_unmet))
            rows.append(row)
    columns = ["dataset", "anchor", "method", "codec", "metric", "metric_label", "unit", "precision",
               "lower_better", "scale", "bd_rate_pct", "bd_metric", "quality_overlap", "rate_overlap", "bpp_range", "note", "unmet"]
    if frame is not None:
        columns += ["wilcoxon_p", "wilcoxon_n"]
    if boot is not None:
        columns += ["bd_rate_lo", "bd_rate_hi", "bd_metric_lo", "bd_metric_hi", "ci_level", "ci_resamples",
                    "ci_seed", "ci_images"]
    return pd.DataFrame(rows, columns=columns)


def _bd_functions(method: str, bpp_range):
    def clip(ra, ma, rt, mt):
        if bpp_range is None:
            return ra, ma, rt, mt
        return (*clip_curve(ra, ma, *bpp_range), *clip_curve(rt, mt, *bpp_range))

    return (lambda *c: bd_rate(*clip(*c), method=method)), (lambda *c: bd_metric(*clip(*c), method=method))


def _name(note: str, anchor: str, test: str) -> str:
    """Put curve names in place of "anchor"/"test" so a footnote blames the right curve."""
    return note.replace("(anchor and test curve)", f"({anchor} and {test})").replace(
        "(anchor curve)", f"(anchor {anchor})").replace("(test curve)", f"({test})")


def per_image_matrices(frame: pd.DataFrame, curve: pd.DataFrame, column: str, source: str | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """images x rate points of bpp and of the metric for one curve (rows of ``frame`` with status ok)."""
    first = curve.iloc[0]
    rows = frame[(frame["dataset"] == first["dataset"]) & (frame["codec"] == first["codec"])
                 & (frame["options"] == first["options"])]
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    col = source or column
    if col not in rows or rows.empty:
        return None
    qualities = [str(q) for q in curve["quality"]]
    rows = rows.assign(_q=rows["quality"].astype(str))
    rows = rows[rows["_q"].isin(qualities)]
    bpp = rows.pivot_table(index="image", columns="_q", values="bpp", aggfunc="mean").reindex(columns=qualities)
    val = rows.pivot_table(index="image", columns="_q", values=col, aggfunc="mean").reindex(columns=qualities)
    keep = bpp.notna().all(axis=1) & val.notna().all(axis=1)
    return bpp[keep], val[keep]


def _intervals(frame, ca, ct, m, boot, rate_fn, metric_fn) -> dict:
    from .stats import paired_bd_ci

    out = {"bd_rate_lo": np.nan, "bd_rate_hi": np.nan, "bd_metric_lo": np.nan, "bd_metric_hi": np.nan,
           "ci_level": boot.level, "ci_resamples": boot.n_resamples, "ci_seed": boot.seed, "ci_images": 0}
    from .curves import source_column

    src = source_column(m)
    ma, mt = per_image_matrices(frame, ca, m.column, src), per_image_matrices(frame, ct, m.column, src)
    if ma is None or mt is None:
        return out
    images = ma[0].index.intersection(mt[0].index)
    if len(images) < 2:
        return out
    tf = _transform(m)
    mats = (ma[0].loc[images].to_numpy(), ma[1].loc[images].to_numpy(),
            mt[0].loc[images].to_numpy(), mt[1].loc[images].to_numpy())
    for key, fn in (("bd_rate", rate_fn), ("bd_metric", metric_fn)):
        lo, hi, _ = paired_bd_ci(*mats, lambda ra, qa, rt, qt: fn(ra, tf(qa), rt, tf(qt)).value, boot)
        out[f"{key}_lo"], out[f"{key}_hi"] = lo, hi
    out["ci_images"] = len(images)
    return out


def _wilcoxon(frame, ca, ct, m, rate_fn) -> dict:
    """Paired significance of the BD-rate: the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided)
    of each image's own BD-rate against 0. NaN when fewer than 2 images compare or every difference is 0."""
    from scipy.stats import wilcoxon

    from .curves import source_column

    out = {"wilcoxon_p": np.nan, "wilcoxon_n": 0}
    src = source_column(m)
    ma, mt = per_image_matrices(frame, ca, m.column, src), per_image_matrices(frame, ct, m.column, src)
    if ma is None or mt is None:
        return out
    tf = _transform(m)
    values = [rate_fn(ma[0].loc[i].to_numpy(), tf(ma[1].loc[i].to_numpy()), mt[0].loc[i].to_numpy(),
                      tf(mt[1].loc[i].to_numpy())).value for i in ma[0].index.intersection(mt[0].index)]
    values = np.asarray([v for v in values if np.isfinite(v)])
    out["wilcoxon_n"] = len(values)
    if len(values) < 2 or not np.any(values):
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # scipy's small-sample notes; the footnote gives n
        out["wilcoxon_p"] = float(wilcoxon(values).pvalue)
    return out


def _transform(m: MetricInfo):
    from .curves import source_column, to_db

    return (lambda v: v) if source_column(m) == m.column else to_db


MS_SSIM_DB_NOTE = ("MS-SSIM (dB): BD computed on -10 log10(1 - MS-SSIM), as CompressAI plots it "
                   "(--ms-ssim-linear: on linear MS-SSIM)")
MS_SSIM_LINEAR_NOTE = ("MS-SSIM (linear): BD computed on linear MS-SSIM (--ms-ssim-db: on -10 log10(1 - MS-SSIM), "
                       "as CompressAI plots it)")


def _scale(m: MetricInfo) -> str:
    """How MS-SSIM entered BD (``dB`` or ``linear``): the two give different BD-rates, so a table must say which."""
    if source_column(m) != "ms_ssim":
        return ""
    return "dB" if m.column != "ms_ssim" else "linear"


def _tag(what: str, note: str) -> str:
    return f"{what}: {note}" if note else ""


def curve_pairs(points: pd.DataFrame, anchor: str):
    """``(dataset, anchor label, anchor curve, label, curve)`` for every curve compared with the anchor."""
    for dataset, per in points.groupby("dataset", sort=True):
        anchor_label = _anchor_label(per, anchor, dataset)
        a = per[per["label"] == anchor_label]
        for label, curve in per.groupby("label", sort=True):
            if label != anchor_label:
                yield dataset, anchor_label, a, label, curve


def _anchor_label(per: pd.DataFrame, anchor: str, dataset: str) -> str:
    from .inputs import InputError

    labels = sorted(per["label"].unique())
    if anchor in labels:
        return anchor
    by_codec = sorted(per.loc[per["codec"] == anchor, "label"].unique())
    if len(by_codec) == 1:
        return by_codec[0]
    if len(by_codec) > 1:
        raise InputError(f"anchor {anchor!r} has several option sets in {dataset}; name one: {', '.join(by_codec)}")
    raise InputError(f"anchor {anchor!r} not in the results of {dataset}; curves there: {', '.join(labels)}")


# -- rendering ----------------------------------------------------------------------------------------------------
NOT_SIGNIFICANT = "°"
