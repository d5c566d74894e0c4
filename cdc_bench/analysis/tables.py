"""The BD table as people read it: the wide Markdown / LaTeX / CSV forms of :func:`cdc_bench.analysis.bdrate.bd_table`,
with their intervals, marks and footnotes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .bdrate import MS_SSIM_DB_NOTE, MS_SSIM_LINEAR_NOTE, NOT_SIGNIFICANT
from .matched import UNMET_MARK


def wide_table(tidy: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, list[str]]]:
    """Per dataset: a table with one row per curve and two columns per metric (BD-rate, BD-metric), and the
    notes as footnotes. A cell reads ``-12.3% [-15.1, -9.8]`` when it has an interval; a dagger marks a note,
    ``°`` an interval that contains 0 (the difference is not distinguishable from none)."""
    from .stats import contains_zero

    out: dict[str, tuple[pd.DataFrame, list[str]]] = {}
    for dataset, per in tidy.groupby("dataset", sort=True):
        notes: list[str] = []
        table: dict[str, dict[str, str]] = {}
        any_ns = False
        for _, row in per.iterrows():
            arrow = "" if row["lower_better"] is None or pd.isna(row["lower_better"]) else (
                "↓" if row["lower_better"] else "↑")
            mark = ""
            if row["note"]:
                notes.append(f"{row['codec']}, {row['metric_label']}: {row['note']}")
                mark = f"†{len(notes)}"
            unit = row.get("unit") if isinstance(row.get("unit"), str) and row.get("unit") else ""
            digits = int(row["precision"]) if "precision" in row and pd.notna(row.get("precision")) else 4
            cells = table.setdefault(row["codec"], {})
            scale = row.get("scale") if isinstance(row.get("scale"), str) and row.get("scale") else ""
            label = f"{row['metric_label']} ({scale})" if scale else row["metric_label"]
            for key, column, d, suffix in (("bd_rate", f"BD-rate {label} [%] ↓", 1, "%"),
                                           ("bd_metric", f"BD-{label}{f' [{unit}]' if unit else ''}"
                                                         f" {arrow}".strip(), digits, "")):
                lo, hi = row.get(f"{key}_lo", np.nan), row.get(f"{key}_hi", np.nan)
                ns = contains_zero(lo, hi)
                any_ns |= ns
                value = row["bd_rate_pct"] if key == "bd_rate" else row[key]
                cell = _fmt(value, d, suffix, lo, hi, mark + (NOT_SIGNIFICANT if ns else ""))
                p = row.get("wilcoxon_p", np.nan) if key == "bd_rate" else np.nan
                if p is not None and np.isfinite(p) and np.isfinite(value):
                    cell += f" p={p:.2g}"
                cells[column] = cell
        frame = pd.DataFrame(list(table.values()), index=list(table))
        frame.index.name = f"vs {per['anchor'].iloc[0]}"
        notes += _table_notes(per, any_ns)
        out[str(dataset)] = (frame.fillna("–"), notes)
    return out


def _table_notes(per: pd.DataFrame, any_ns: bool) -> list[str]:
    notes = []
    scales = set(per["scale"].dropna()) if "scale" in per else set()
    notes += [MS_SSIM_DB_NOTE] if "dB" in scales else []
    notes += [MS_SSIM_LINEAR_NOTE] if "linear" in scales else []
    if "unmet" in per:
        notes += list(dict.fromkeys(n for text in per["unmet"].dropna() if text for n in text.split(" | ")))
    ranges = [r for r in per.get("bpp_range", pd.Series(dtype=str)).dropna().unique() if r]
    if ranges:
        notes.append(f"BD computed over {ranges[0]} bpp (--bpp-range): curves clipped to that window, end points "
                     "interpolated linearly in log-rate")
    if "ci_level" in per and per["ci_level"].notna().any():
        first = per.dropna(subset=["ci_level"]).iloc[0]
        notes.append(f"[lo, hi]: {first['ci_level'] * 100:g}% paired bootstrap interval over "
                     f"{int(per['ci_images'].max())} images ({int(first['ci_resamples'])} resamples, seed "
                     f"{int(first['ci_seed'])}; image indices resampled once for both curves)")
    if "wilcoxon_p" in per and per["wilcoxon_p"].notna().any():
        notes.append(f"p: Wilcoxon signed-rank test (two-sided) of the per-image BD-rates against 0, over "
                     f"{int(per['wilcoxon_n'].max())} images (scipy.stats.wilcoxon)")
    if any_ns:
        notes.append(f"{NOT_SIGNIFICANT}: the interval contains 0; the difference is not distinguishable from none")
    return notes


def _fmt(value: float, digits: int, suffix: str, lo: float = np.nan, hi: float = np.nan, mark: str = "") -> str:
    if value is None or not np.isfinite(value):
        return f"n/a {mark}".strip()
    text = f"{value:+.{digits}f}{suffix}"
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
        text += f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return f"{text} {mark}".strip()


def to_markdown(tidy: pd.DataFrame) -> str:
    """GitHub Markdown: a heading and a pipe table per dataset, notes listed below."""
    parts = []
    for dataset, (frame, notes) in wide_table(tidy).items():
        parts.append(f"### {dataset}: BD against {frame.index.name[3:]}\n")
        parts.append(frame.to_markdown(stralign="right"))
        parts.append("")
        parts += [f"- {_label(i, note)}" for i, note in enumerate(notes, 1)]
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
            parts.append("\\par\\footnotesize " + "; ".join(_latex_text(_label(i, n)) for i, n in enumerate(notes, 1)))
        parts.append("\\end{table}\n")
    return "\n".join(parts)


def _label(i: int, note: str) -> str:
    """Footnotes of a cell get a numbered dagger; notes about the whole table (ranges, intervals) none."""
    general = note.startswith(("BD computed over", "[lo, hi]", NOT_SIGNIFICANT, "MS-SSIM (dB):", "MS-SSIM (linear):",
                                 "p: Wilcoxon",
                                 UNMET_MARK))
    return note if general else f"†{i}: {note}"


def _method(tidy: pd.DataFrame) -> str:
    return str(tidy["method"].iloc[0]) if len(tidy) else "pchip"


def to_csv(tidy: pd.DataFrame) -> str:
    """The tidy table, one row per (dataset, codec, metric), full precision."""
    return tidy.to_csv(index=False)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "↑": r"$\uparrow$", "↓": r"$\downarrow$", "†": r"$^\dagger$", "–": "--", "−": "-",
                  "°": r"$^\circ$"}


def _latex_text(text) -> str:
    # Hand-written: pandas' escape="latex" knows nothing of arrows and daggers, which plain LaTeX cannot typeset.
    parts = re.split(r"†(\d+)", str(text))  # "†3" -> a superscript dagger 3
    out = []
    for i, part in enumerate(parts):
        out.append(f"$^{{\\dagger{part}}}$" if i % 2 else "".join(_LATEX_SPECIAL.get(ch, ch) for ch in part))
    return "".join(out)
