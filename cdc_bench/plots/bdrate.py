"""BD-rate and BD-metric of every curve against an anchor, for every metric, via the ``bjontegaard`` package.

BD-rate: the average rate difference (in %) at equal quality over the quality range both curves cover;
negative means the codec needs fewer bits than the anchor. BD-metric: the average quality difference at equal
rate (in the metric's unit); its sign is good or bad according to the metric's direction, which the table
header says. Interpolation is PCHIP (the JCT-VC/JVET convention). Where curves do not overlap, or overlap only
partly, or quality is not monotonic in rate, the table says so instead of printing a number silently.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .frames import MetricSpec

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
    if rate and not (_strictly_monotonic(ma) and _strictly_monotonic(mt)):
        return BDResult(float("nan"), 0.0, "quality not monotonic in rate")
    if not rate and not (_strictly_monotonic(ra) and _strictly_monotonic(rt)):
        return BDResult(float("nan"), 0.0, "repeated rates")
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


def bd_table(points: pd.DataFrame, anchor: str, metrics: Sequence[MetricSpec],
             method: str = "pchip") -> pd.DataFrame:
    """Tidy BD table: one row per (dataset, curve, metric) with bd_rate_pct, bd_metric, overlaps and notes.

    ``points`` is :func:`cdc_bench.plots.frames.rd_points`. ``anchor`` names a curve label (``hevc``,
    ``cdc (steps=65)``) or a codec that has exactly one option set in each dataset.
    """
    rows = []
    for dataset, per in points.groupby("dataset", sort=True):
        anchor_label = _anchor_label(per, anchor, dataset)
        a = per[per["label"] == anchor_label]
        for label, curve in per.groupby("label", sort=True):
            if label == anchor_label:
                continue
            for m in metrics:
                if m.column not in per:
                    continue
                ca = a.dropna(subset=[m.column])
                ct = curve.dropna(subset=[m.column])
                if len(ct) == 0 or len(ca) == 0:
                    continue
                r = bd_rate(ca["bpp"], ca[m.column], ct["bpp"], ct[m.column], method)
                q = bd_metric(ca["bpp"], ca[m.column], ct["bpp"], ct[m.column], method)
                rows.append({"dataset": dataset, "anchor": anchor_label, "method": method, "codec": label, "metric": m.name,
                             "metric_label": m.label, "lower_better": m.lower_better,
                             "bd_rate_pct": r.value, "bd_metric": q.value,
                             "quality_overlap": r.overlap, "rate_overlap": q.overlap,
                             "note": "; ".join(n for n in (_tag("BD-rate", r.note), _tag("BD-metric", q.note)) if n)})
    return pd.DataFrame(rows, columns=["dataset", "anchor", "method", "codec", "metric", "metric_label", "lower_better",
                                       "bd_rate_pct", "bd_metric", "quality_overlap", "rate_overlap", "note"])


def _tag(what: str, note: str) -> str:
    return f"{what}: {note}" if note else ""


def _anchor_label(per: pd.DataFrame, anchor: str, dataset: str) -> str:
    labels = sorted(per["label"].unique())
    if anchor in labels:
        return anchor
    by_codec = sorted(per.loc[per["codec"] == anchor, "label"].unique())
    if len(by_codec) == 1:
        return by_codec[0]
    if len(by_codec) > 1:
        raise ValueError(f"anchor {anchor!r} has several option sets in {dataset}; name one: {', '.join(by_codec)}")
    raise ValueError(f"anchor {anchor!r} not in the results of {dataset}; curves there: {', '.join(labels)}")


# -- rendering ----------------------------------------------------------------------------------------------------
def wide_table(tidy: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, list[str]]]:
    """Per dataset: a table with one row per curve and two columns per metric (BD-rate, BD-metric), and the
    notes as footnotes. Cell text carries a dagger where a note applies."""
    out: dict[str, tuple[pd.DataFrame, list[str]]] = {}
    for dataset, per in tidy.groupby("dataset", sort=True):
        notes: list[str] = []
        table: dict[str, dict[str, str]] = {}
        for _, row in per.iterrows():
            arrow = "" if row["lower_better"] is None or pd.isna(row["lower_better"]) else (
                "↓" if row["lower_better"] else "↑")
            mark = ""
            if row["note"]:
                notes.append(f"{row['codec']}, {row['metric_label']}: {row['note']}")
                mark = f"†{len(notes)}"
            cells = table.setdefault(row["codec"], {})
            cells[f"BD-rate {_short(row['metric_label'])} [%] ↓"] = _fmt(row["bd_rate_pct"], 1, mark)
            cells[f"BD-{row['metric_label']} {arrow}".strip()] = _fmt(row["bd_metric"], _digits(row), mark)
        frame = pd.DataFrame(list(table.values()), index=list(table))
        frame.index.name = f"vs {per['anchor'].iloc[0]}"
        out[str(dataset)] = (frame.fillna("–"), notes)
    return out


def _short(label: str) -> str:
    return label.split(" [")[0]


def _digits(row) -> int:
    # dB differences read well to 2 decimals; MS-SSIM/LPIPS differences are small fractions.
    return 2 if "[dB]" in str(row["metric_label"]) else 4


def _fmt(value: float, digits: int, mark: str) -> str:
    text = "n/a" if value is None or not np.isfinite(value) else f"{value:+.{digits}f}"
    return f"{text} {mark}".strip()


def to_markdown(tidy: pd.DataFrame) -> str:
    """GitHub Markdown: a heading and a pipe table per dataset, notes listed below."""
    parts = []
    for dataset, (frame, notes) in wide_table(tidy).items():
        parts.append(f"### {dataset}: BD against {frame.index.name[3:]}\n")
        parts.append(frame.to_markdown(stralign="right"))
        parts.append("")
        parts += [f"- †{i}: {note}" for i, note in enumerate(notes, 1)]
        parts.append("")
    parts.append("BD-rate: average rate change at equal quality (negative = fewer bits). "
                 f"BD-metric: average quality change at equal rate. {_method(tidy).upper()} interpolation "
                 "(bjontegaard package).")
    return "\n".join(parts) + "\n"


def to_latex(tidy: pd.DataFrame) -> str:
    """LaTeX tables with booktabs rules (``\\usepackage{booktabs}``), notes as a footnote-sized paragraph."""
    parts = []
    for dataset, (frame, notes) in wide_table(tidy).items():
        anchor = _latex_text(frame.index.name[3:] if frame.index.name else "")
        frame = frame.copy()
        frame.columns = [_latex_text(c) for c in frame.columns]
        frame.index = [_latex_text(i) for i in frame.index]
        frame = frame.map(_latex_text)
        frame.index.name = None
        body = frame.style.to_latex(hrules=True, column_format="l" + "r" * frame.shape[1])
        parts.append("\\begin{table}[t]\n\\centering\\small")
        parts.append(f"\\caption{{BD-rate and BD-metric against {anchor} on {_latex_text(dataset)} "
                     f"({_method(tidy).upper()}).}}")
        parts.append(body.rstrip())
        if notes:
            parts.append("\\par\\footnotesize " + "; ".join(_latex_text(f"†{i}: {n}") for i, n in enumerate(notes, 1)))
        parts.append("\\end{table}\n")
    return "\n".join(parts)


def _method(tidy: pd.DataFrame) -> str:
    return str(tidy["method"].iloc[0]) if len(tidy) else "pchip"


def to_csv(tidy: pd.DataFrame) -> str:
    """The tidy table, one row per (dataset, codec, metric), full precision."""
    return tidy.to_csv(index=False)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "↑": r"$\uparrow$", "↓": r"$\downarrow$", "†": r"$^\dagger$", "–": "--", "−": "-"}


def _latex_text(text) -> str:
    # Hand-written: pandas' escape="latex" knows nothing of arrows and daggers, which plain LaTeX cannot typeset.
    parts = re.split(r"†(\d+)", str(text))  # "†3" -> a superscript dagger 3
    out = []
    for i, part in enumerate(parts):
        out.append(f"$^{{\\dagger{part}}}$" if i % 2 else "".join(_LATEX_SPECIAL.get(ch, ch) for ch in part))
    return "".join(out)
