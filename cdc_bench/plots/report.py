"""One self-contained HTML page: run manifest, BD tables, RD figures and an image viewer.

Everything is inside the file (figures as SVG data URIs, images as PNG data URIs, plain JavaScript, no CDN), so
the page can be mailed, archived or opened offline. The viewer switches codec and rate point and compares with
the original side by side or with a slider.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import time
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ..analysis.bdrate import bd_table
from ..analysis.tables import _label, wide_table
from ..analysis.matched import unmet_notes
from ..analysis.curves import (RANDOM_WEIGHTS, MetricInfo, dataset_level_notes, dataset_title, ok_rows, rd_points,
                     curve_labels, source_column, subset_warning)
from ..analysis.published import PublishedCurve
from .captions import interval_text, sentences
from .rd import figure_notes, rd_axes, rd_caption
from .style import COLUMN_WIDTH, paper_style

log = logging.getLogger(__name__)
ANCHOR_PREFERENCE = ("hevc", "bpg", "vtm", "jpeg2000", "webp", "jpeg")


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


VIEWER_QUALITY = 95   # lossy WebP quality of the viewer's images unless --lossless


def lossless_uri(image: np.ndarray) -> str:
    """Lossless WebP: the exact pixels, a third smaller than PNG and faster to write at the fastest effort
    setting; every current browser decodes it."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="WEBP", lossless=True, quality=0, method=0)
    return data_uri(buf.getvalue(), "image/webp")


def image_uri(image: np.ndarray, lossless: bool = False) -> str:
    """The viewer's image: lossy WebP at high quality by default (a Kodak sweep's viewer went from 46 MB to a
    few MB), lossless on request for pixel-exact inspection of artefacts."""
    from PIL import Image

    if lossless:
        return lossless_uri(image)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="WEBP", quality=VIEWER_QUALITY, method=4)
    return data_uri(buf.getvalue(), "image/webp")


def rd_svg(points: pd.DataFrame, metric: MetricInfo, published: Sequence[PublishedCurve] = (),
           width: float = COLUMN_WIDTH * 1.5, title: str | None = None, notes: Sequence[str] = ()) -> str | None:
    """One RD figure as an SVG data URI (None when the metric has no values)."""
    if metric.column not in points or points[metric.column].notna().sum() == 0:
        return None
    with paper_style(width):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(width, width * 0.75), layout="constrained")
        rd_axes(ax, points, metric, published)
        if title:
            ax.set_title(title)
        figure_notes(fig, list(notes), width)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg")
        plt.close(fig)
    return data_uri(buf.getvalue(), "image/svg+xml")


def pick_anchor(points: pd.DataFrame) -> str | None:
    codecs = set(points["codec"])
    for name in ANCHOR_PREFERENCE:
        if name in codecs:
            labels = sorted(points.loc[points["codec"] == name, "label"].unique())
            return labels[0]
    labels = sorted(points["label"].unique())
    return labels[0] if labels else None


def viewer_data(out_dir: str | Path, frame: pd.DataFrame, image: str, original: np.ndarray | None,
                metrics: Sequence[MetricInfo], dataset: str | None = None, lossless: bool = False,
                ) -> dict[str, Any]:
    """Every saved reconstruction of ``image`` (grouped by curve, sorted by bpp) plus the original."""
    from .compare import load_recon

    frame = frame.assign(_label=curve_labels(frame))
    rows = frame[(frame["image"] == image) & ((frame["dataset"] == dataset) if dataset else True)]
    curves: dict[str, list[dict[str, Any]]] = {}
    missing = 0
    for _, row in rows.sort_values("bpp").iterrows():
        try:
            recon = load_recon(row.get("_out_dir") or out_dir, row)
        except ValueError:
            missing += 1
            continue
        values = {m.label: _round(row.get(m.column)) for m in metrics if m.column in row}
        curves.setdefault(row["_label"], []).append(
            {"quality": str(row["quality"]), "bpp": round(float(row["bpp"]), 4), "metrics": values,
             "src": image_uri(recon, lossless)})
    if missing:
        log.warning("viewer: %d reconstructions of %s not saved (run with --save-recon)", missing, image)
    return {"image": image, "original": image_uri(original, lossless) if original is not None else None,
            "curves": curves, "missing": missing, "lossless": lossless}


def _round(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, 4) if np.isfinite(value) else None


def build_report(frame: pd.DataFrame, metrics: Sequence[MetricInfo], *, runs: Sequence[dict] = (),
                 dataset_metrics: pd.DataFrame | None = None, anchor: str | None = None,
                 published: dict[str, list[PublishedCurve]] | None = None,
                 viewers: Sequence[dict[str, Any]] = (), speed_svg: str | None = None,
                 title: str = "cdc-bench report", boot=None, bpp_range=None, speed_caption: str | None = None) -> str:
    """The page as one HTML string (templates/report.html.j2); every figure has its caption under it (bands,
    preprocessing, clock, load)."""
    rows, dropped = ok_rows(frame)
    points = rd_points(rows, list(metrics), dataset_metrics, boot)
    published = published or {}
    bands = None
    if boot is not None:
        bands = sentences([interval_text(boot, "bands and [lo, hi]"),   # the figures' captions say the same
                           "BD intervals are paired (the same image resample for both curves)"])
    anchor = anchor or (pick_anchor(points) if len(points) else None)
    datasets = [_dataset_section(str(dataset), per, rows, metrics, runs, published.get(str(dataset), []), anchor,
                                 boot, bpp_range) for dataset, per in points.groupby("dataset", sort=True)]
    encoding = None
    if viewers:
        encoding = ("lossless WebP (exact pixels)" if all(v.get("lossless") for v in viewers) else
                    f"lossy WebP at quality {VIEWER_QUALITY} (report --lossless for exact pixels)")
    return _template("report.html.j2").render(
        title=title, generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"), n_rows=len(rows), dropped=dropped,
        bands=bands, anchor=anchor, datasets=datasets, speed_svg=speed_svg, speed_caption=speed_caption,
        viewer_encoding=encoding, **_runs_context(runs),
        viewer_payload=Markup(json.dumps(list(viewers)).replace("</", "<\\/")),
        css=Markup(_resource("report.css")), viewer_js=Markup(_resource("viewer.js")))


def _dataset_section(dataset: str, per: pd.DataFrame, rows: pd.DataFrame, metrics: Sequence[MetricInfo],
                     runs: Sequence[dict], refs: list[PublishedCurve], anchor: str | None, boot, bpp_range
                     ) -> dict[str, Any]:
    """What the template shows for one dataset: heading, warnings and notes, BD tables, figures, means."""
    heading, subset = dataset_title(dataset, int(per["n_images"].max()), runs, per.get("preprocess", ()))
    notes = []
    random = sorted({label for label in per["label"] if RANDOM_WEIGHTS in label})
    if random:
        notes.append({"kind": "warn", "text": f"{', '.join(random)}: random weights. These rows measure the "
                                              "harness (timing, bitstreams), not the codec's quality."})
    warning = subset_warning(subset, refs)
    if warning:
        notes.append({"kind": "warn", "text": f"Warning: {warning}."})
    level_notes = dataset_level_notes(per, metrics)
    notes += [{"kind": "warn", "text": n} for n in unmet_notes(per)]
    notes += [{"kind": "warn" if "UNRELIABLE" in n else "note", "text": n} for n in level_notes]
    bd_tables, bd_error = [], None
    if anchor is not None and per["label"].nunique() > 1:
        try:
            tidy = bd_table(per, anchor, metrics, frame=rows, boot=boot, bpp_range=bpp_range)
            bd_tables = [{"table": Markup(table.rename_axis(None).to_html(classes="bd", border=0)),
                          "notes": [_label(i, n) for i, n in enumerate(table_notes, 1)]}
                         for _, (table, table_notes) in wide_table(tidy).items()]
        except ValueError as err:
            bd_error = str(err)
    figures = []
    for metric in metrics:
        fig_notes = [n for n in [warning] + level_notes if n and (n == warning or (
            "UNRELIABLE" in n and n.startswith(metric.label)))]
        uri = rd_svg(per, metric, refs, title=heading, notes=fig_notes)
        if uri:
            figures.append({"src": uri, "axis_label": metric.axis_label,
                            "caption": rd_caption(heading, per, metric, boot, True, refs, fig_notes)})
    means = per.drop(columns=["options"]).round(4)
    return {"heading": heading, "notes": notes, "bd_tables": bd_tables, "bd_error": bd_error, "figures": figures,
            "means": Markup(means.to_html(index=False, classes="points", border=0)),
            "per_image": _per_image_html(rows[rows["dataset"] == dataset], metrics)}


def _per_image_html(rows: pd.DataFrame, metrics: Sequence[MetricInfo]) -> Markup | str:
    """Every image's numbers, one row per (image, curve, rate point): the means above hide the spread."""
    if rows.empty:
        return ""
    cols = [source_column(m) for m in metrics if not m.dataset_level and source_column(m) in rows]
    table = rows.assign(curve=curve_labels(rows))
    table = table[["image", "curve", "quality", "bpp"] + list(dict.fromkeys(cols))].sort_values(
        ["image", "curve", "bpp"]).round(4)
    return Markup(table.to_html(index=False, classes="points", border=0))


def _run_status(manifest: dict) -> str:
    """finished, interrupted (by which signal, rows saved), failed (lost scheduler, full disk), or not ended (killed, or still running)."""
    stop = manifest.get("interrupted")
    if stop:
        word = "failed" if manifest.get("status") == "failed" else "interrupted"  # a fault, not a signal
        return f"{word} ({stop.get('reason', '?')}; {stop.get('rows_saved', '?')} rows saved)"
    return "finished" if manifest.get("ended_at") else "not ended (killed, or still running)"


def _run_load(manifest: dict) -> str:
    """The peak 1-minute load average a sweep recorded, against its cores (``–`` for older runs)."""
    load = manifest.get("load") or {}
    if load.get("peak_1min") is None:
        return "–"
    busy = " (busy)" if load.get("cores") and load["peak_1min"] > load["cores"] else ""
    return f"{load['peak_1min']:g} on {load.get('cores', '?')} cores{busy}"


def _runs_context(runs: Sequence[dict]) -> dict[str, Any]:
    """The Runs table (one row per manifest, its status in words) and the full manifests as JSON."""
    if not runs:
        return {"runs_table": None, "runs_json": ""}
    rows = []
    for m in runs:
        git = m.get("git") or {}
        commit = f"{str(git.get('commit', ''))[:10]}{' (dirty)' if git.get('dirty') else ''}" if git else "?"
        rows.append({"run": m.get("run_id"), "started": m.get("started_at"), "ended": m.get("ended_at") or "–",
                     "status": _run_status(m),
                     "command": " ".join(map(str, m.get("command", []))), "device": m.get("device"),
                     "git": commit, "host": m.get("host"), "load (peak 1 min)": _run_load(m)})
    return {"runs_table": Markup(pd.DataFrame(rows).to_html(index=False, border=0, classes="runs")),
            "runs_json": json.dumps(list(runs), indent=1, default=str)}


def _manifest_html(runs: Sequence[dict]) -> str:
    """The Runs section alone (as the full page shows it)."""
    return _template("runs.html.j2").render(**_runs_context(runs))


@functools.lru_cache(maxsize=None)
def _resource(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def _template(name: str):
    """A template of templates/ with HTML autoescaping: a codec or dataset name can never inject markup."""
    env = Environment(loader=PackageLoader(__package__, "templates"), autoescape=select_autoescape(["j2"]),
                      keep_trailing_newline=True, undefined=StrictUndefined)
    return env.get_template(name)
