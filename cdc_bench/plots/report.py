"""One self-contained HTML page: run manifest, BD tables, RD figures and an image viewer.

Everything is inside the file (figures as SVG data URIs, images as PNG data URIs, plain JavaScript, no CDN), so
the page can be mailed, archived or opened offline. The viewer switches codec and rate point and compares with
the original side by side or with a slider.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..analysis.bdrate import bd_table
from ..analysis.tables import _label, wide_table
from ..analysis.matched import unmet_notes
from ..analysis.curves import (RANDOM_WEIGHTS, MetricInfo, dataset_level_notes, dataset_title, ok_rows, rd_points,
                     curve_labels, source_column, subset_warning)
from ..analysis.published import PublishedCurve
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
    """The page as one HTML string; every figure has its caption under it (bands, preprocessing, clock, load)."""
    rows, dropped = ok_rows(frame)
    points = rd_points(rows, list(metrics), dataset_metrics, boot)
    published = published or {}
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class=meta>Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} from {len(rows)} successful result "
             f"rows ({dropped} rows with status other than ok left out).</p>"]
    if boot is not None:
        parts.append(f"<p class=meta>Bands and [lo, hi]: {boot.percent} bootstrap intervals over images "
                     f"({boot.method}, {boot.n_resamples} resamples, seed {boot.seed}); BD intervals are paired "
                     "(the same image resample for both curves).</p>")
    parts.append(_manifest_html(runs))
    anchor = anchor or (pick_anchor(points) if len(points) else None)
    for dataset, per in points.groupby("dataset", sort=True):
        heading, subset = dataset_title(str(dataset), int(per["n_images"].max()), runs, per.get("preprocess", ()))
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        random = sorted({label for label in per["label"] if RANDOM_WEIGHTS in label})
        if random:
            parts.append(f"<p class=warn>{html.escape(', '.join(random))}: random weights. These rows measure the "
                         "harness (timing, bitstreams), not the codec's quality.</p>")
        refs = published.get(str(dataset), [])
        warning = subset_warning(subset, refs)
        if warning:
            parts.append(f"<p class=warn>Warning: {html.escape(warning)}.</p>")
        level_notes = dataset_level_notes(per, metrics)
        parts += [f"<p class=warn>{html.escape(n)}</p>" for n in unmet_notes(per)]
        parts += [f"<p class={'warn' if 'UNRELIABLE' in n else 'note'}>{html.escape(n)}</p>" for n in level_notes]
        if anchor is not None and per["label"].nunique() > 1:
            try:
                tidy = bd_table(per, anchor, metrics, frame=rows, boot=boot, bpp_range=bpp_range)
                for _, (table, notes) in wide_table(tidy).items():
                    parts.append(f"<h3>BD-rate and BD-metric against {html.escape(anchor)}</h3>")
                    parts.append(table.rename_axis(None).to_html(classes="bd", border=0))
                    parts += [f"<p class=note>{html.escape(_label(i, n))}</p>" for i, n in enumerate(notes, 1)]
            except ValueError as err:
                parts.append(f"<p class=warn>No BD table: {html.escape(str(err))}</p>")
        parts.append("<h3>Rate–quality curves</h3><div class=figs>")
        for metric in metrics:
            notes = [n for n in [warning] + level_notes if n and (n == warning or (
                "UNRELIABLE" in n and n.startswith(metric.label)))]
            uri = rd_svg(per, metric, refs, title=heading, notes=notes)
            if uri:
                parts.append(f'<figure><img class=rd alt="{html.escape(metric.axis_label)} against bpp" '
                             f'src="{uri}"><figcaption><b>{html.escape(metric.axis_label)}</b>. '
                             f'{html.escape(rd_caption(heading, per, metric, boot, True, refs, notes))}'
                             '</figcaption></figure>')
        parts.append("</div>")
        means = per.drop(columns=["options"]).round(4)
        parts.append("<details><summary>Dataset means per rate point</summary>"
                     f"{means.to_html(index=False, classes='points', border=0)}</details>")
        parts.append(_per_image_html(rows[rows["dataset"] == dataset], metrics))
    if speed_svg:
        caption = f"<figcaption>{html.escape(speed_caption)}</figcaption>" if speed_caption else ""
        parts.append(f'<h2>Decoding speed</h2><figure><img class=rd alt="speed" src="{speed_svg}">{caption}</figure>')
    if viewers:
        lossless = all(v.get("lossless") for v in viewers)
        parts.append(_VIEWER_HTML.replace("{encoding}", "lossless WebP (exact pixels)" if lossless else
                                          f"lossy WebP at quality {VIEWER_QUALITY} (report --lossless for exact "
                                          "pixels)"))
    payload = json.dumps(list(viewers)).replace("</", "<\\/")
    return (_HEAD.replace("{title}", html.escape(title)) + "\n".join(parts)
            + f'\n<script type="application/json" id="viewer-data">{payload}</script>\n'
            + f"<script>{_VIEWER_JS}</script>\n</body></html>\n")


def _per_image_html(rows: pd.DataFrame, metrics: Sequence[MetricInfo]) -> str:
    """Every image's numbers, one row per (image, curve, rate point): the means above hide the spread."""
    if rows.empty:
        return ""
    cols = [source_column(m) for m in metrics if not m.dataset_level and source_column(m) in rows]
    table = rows.assign(curve=curve_labels(rows))
    table = table[["image", "curve", "quality", "bpp"] + list(dict.fromkeys(cols))].sort_values(
        ["image", "curve", "bpp"]).round(4)
    return ("<details><summary>Per-image values</summary>"
            f"{table.to_html(index=False, classes='points', border=0)}</details>")


def _run_status(manifest: dict) -> str:
    """finished, interrupted (by which signal, rows saved), failed (lost scheduler, full disk), or not ended (killed, or still running)."""
    stop = manifest.get("interrupted")
    if stop:
        word = "failed" if manifest.get("status") == "failed" else "interrupted"  # a fault, not a signal
        return f"{word} ({stop.get('reason', '?')}; {stop.get('rows_saved', '?')} rows saved)"
    return "finished" if manifest.get("ended_at") else "not ended (killed, or still running)"


def _manifest_html(runs: Sequence[dict]) -> str:
    if not runs:
        return "<h2>Runs</h2><p class=warn>No run manifest in the results.</p>"
    rows = []
    for m in runs:
        git = m.get("git") or {}
        commit = f"{str(git.get('commit', ''))[:10]}{' (dirty)' if git.get('dirty') else ''}" if git else "?"
        rows.append({"run": m.get("run_id"), "started": m.get("started_at"), "ended": m.get("ended_at") or "–",
                     "status": _run_status(m),
                     "command": " ".join(map(str, m.get("command", []))), "device": m.get("device"),
                     "git": commit, "host": m.get("host")})
    table = pd.DataFrame(rows).to_html(index=False, border=0, classes="runs")
    full = html.escape(json.dumps(list(runs), indent=1, default=str))
    return f"<h2>Runs</h2>{table}<details><summary>Full manifests (JSON)</summary><pre>{full}</pre></details>"


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
[hidden]{display:none!important} h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:13px} th,td{padding:3px 8px;text-align:right}
thead th{border-bottom:1px solid #888} tbody tr:nth-child(odd){background:#f6f6f6}
.meta,.note{color:#555} .warn{color:#a33}
.figs{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0} img.rd{width:480px;max-width:100%}
pre{max-height:300px;overflow:auto;background:#f4f4f4;padding:.5em;font-size:12px}
#viewer .controls{display:flex;flex-wrap:wrap;gap:1em;align-items:center;margin:.5em 0}
#viewer .pair{display:flex;gap:8px} #viewer .pair figure{flex:1;min-width:0} #viewer img{width:100%;display:block;image-rendering:pixelated}
#viewer .slider{position:relative;display:inline-block;width:100%;max-width:900px} #viewer .slider .top{position:absolute;left:0;top:0}
#viewer .cap{font-size:13px;color:#333;margin:.3em 0}
</style></head><body>
"""

_VIEWER_HTML = """<h2>Image viewer</h2>
<p class=meta>Images shown as {encoding}.</p>
<div id="viewer">
 <div class="controls">
  <label>Image <select id="v-image"></select></label>
  <label>Codec <select id="v-codec"></select></label>
  <label>Rate point <input type="range" id="v-rate" min="0" max="0" value="0"> <span id="v-rate-text"></span></label>
  <label><input type="radio" name="v-mode" value="side" checked> side by side</label>
  <label><input type="radio" name="v-mode" value="slider"> slider</label>
 </div>
 <div class="cap" id="v-caption"></div>
 <div class="pair" id="v-side"><figure><img id="v-orig" alt="original"><figcaption>Original</figcaption></figure>
  <figure><img id="v-recon" alt="reconstruction"><figcaption id="v-recon-cap">Reconstruction</figcaption></figure></div>
 <div id="v-slide" hidden><div class="slider"><img id="v-s-orig" alt="original"><img class="top" id="v-s-recon" alt="reconstruction"></div>
  <input type="range" id="v-split" min="0" max="100" value="50" style="width:100%">
  <div class="cap">left of the split: reconstruction · right: original</div></div>
</div>
"""

# Plain JavaScript, no libraries: the page must work offline and from a file:// URL.
_VIEWER_JS = r"""
(function () {
  var data = JSON.parse(document.getElementById('viewer-data').textContent);
  var root = document.getElementById('viewer');
  if (!root || !data.length) { document.body.setAttribute('data-viewer', 'none'); return; }
  var $ = function (id) { return document.getElementById(id); };
  var state = {img: 0, codec: null, rate: 0};
  function fill(select, names) {
    select.innerHTML = '';
    names.forEach(function (n, i) { var o = document.createElement('option'); o.value = i; o.textContent = n; select.appendChild(o); });
  }
  function codecs() { return Object.keys(data[state.img].curves); }
  function points() { return data[state.img].curves[codecs()[state.codec]] || []; }
  function show() {
    var d = data[state.img], pts = points(), p = pts[state.rate];
    var orig = d.original || '';
    $('v-orig').src = orig; $('v-s-orig').src = orig;
    if (!p) { $('v-caption').textContent = 'No saved reconstructions for this image.'; return; }
    $('v-recon').src = p.src; $('v-s-recon').src = p.src;
    var m = Object.keys(p.metrics).filter(function (k) { return p.metrics[k] !== null; })
      .map(function (k) { return k + ' ' + p.metrics[k]; }).join(' · ');
    var text = codecs()[state.codec] + ' at ' + p.quality + ': ' + p.bpp + ' bpp' + (m ? ' · ' + m : '');
    $('v-caption').textContent = text + (d.original ? '' : ' (original not available)');
    $('v-recon-cap').textContent = text;
    $('v-rate-text').textContent = (state.rate + 1) + ' / ' + pts.length + ' (' + p.bpp + ' bpp)';
    split();
  }
  function split() {
    var v = $('v-split').value;
    $('v-s-recon').style.clipPath = 'inset(0 ' + (100 - v) + '% 0 0)';
  }
  function pickImage(i) {
    state.img = i; state.codec = 0; fill($('v-codec'), codecs()); pickCodec(0);
  }
  function pickCodec(i) {
    state.codec = i; var n = points().length;
    $('v-rate').max = Math.max(n - 1, 0); state.rate = Math.min(state.rate, Math.max(n - 1, 0)); $('v-rate').value = state.rate;
    show();
  }
  fill($('v-image'), data.map(function (d) { return d.image; }));
  $('v-image').addEventListener('change', function (e) { pickImage(+e.target.value); });
  $('v-codec').addEventListener('change', function (e) { pickCodec(+e.target.value); });
  $('v-rate').addEventListener('input', function (e) { state.rate = +e.target.value; show(); });
  $('v-split').addEventListener('input', split);
  Array.prototype.forEach.call(document.querySelectorAll('input[name=v-mode]'), function (r) {
    r.addEventListener('change', function () {
      var slider = document.querySelector('input[name=v-mode]:checked').value === 'slider';
      $('v-side').hidden = slider; $('v-slide').hidden = !slider;
    });
  });
  // A link can open the viewer in a given state: report.html#mode=slider&codec=webp&rate=2&split=30
  var want = {};
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) { var p = kv.split('='); if (p[0]) want[p[0]] = decodeURIComponent(p[1] || ''); });
  pickImage(0);
  if (want.codec && codecs().indexOf(want.codec) >= 0) { $('v-codec').value = codecs().indexOf(want.codec); pickCodec(codecs().indexOf(want.codec)); }
  if (want.rate) { state.rate = Math.max(0, Math.min(+want.rate || 0, points().length - 1)); $('v-rate').value = state.rate; show(); }
  if (want.split) { $('v-split').value = +want.split; split(); }
  if (want.mode === 'slider') { document.querySelector('input[name=v-mode][value=slider]').click(); }
  document.body.setAttribute('data-viewer', 'ready');
})();
"""
