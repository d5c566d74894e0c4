"""Figure captions: what a paper's author must say under a figure, written where they get it.

Every figure the plots write gets a sidecar ``<stem>.caption.txt`` (beside ``<stem>.pdf``/``.png``; see
:func:`cdc_bench.plots.style.save_figure`), the commands print it, and the HTML report puts it under the figure.
A caption states what the bands or error bars are (level, method and resamples of
:class:`cdc_bench.analysis.stats.Bootstrap`, as used), the preprocessing the rows were measured under, how the rate
is counted, and for speed figures the clock and the machine load recorded at measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

CAPTION_SUFFIX = ".caption.txt"
#: how bpp is counted everywhere in cdc-bench (:mod:`cdc_bench.sweep.worker`)
RATE_TEXT = "Rate: 8 x bitstream bytes (headers included) / pixels of the original image"


def caption_path(stem: str | Path) -> Path:
    """The caption file of a figure stem (``figures/rd_kodak_psnr`` -> ``figures/rd_kodak_psnr.caption.txt``)."""
    stem = Path(stem)
    return stem.parent / f"{stem.name}{CAPTION_SUFFIX}"


def caption_of(figure: str | Path) -> Path:
    """The caption file beside a written figure file (``rd_kodak_psnr.png``)."""
    figure = Path(figure)
    return caption_path(figure.parent / figure.stem)


def read_caption(figure: str | Path) -> str | None:
    """The caption written beside ``figure``, or None."""
    path = caption_of(figure)
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def write_caption(stem: str | Path, text: str) -> Path:
    """Write a figure's caption beside it (atomically: temp file + rename)."""
    import os

    path = caption_path(stem)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text.strip() + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def sentences(parts: Iterable[str | None]) -> str:
    """The non-empty parts as sentences."""
    return " ".join(f"{p.strip().rstrip('.')}." for p in parts if p and p.strip())


def interval_text(boot, what: str = "bands") -> str:
    """What the bands (or error bars) of per-image means are, from the bootstrap actually used."""
    if boot is None:
        return f"No {what}: intervals were not computed (--no-ci)"
    return (f"{what[0].upper()}{what[1:]}: {boot.percent} bootstrap confidence interval of the mean over images "
            f"({boot.method}, {boot.n_resamples} resamples, seed {boot.seed})"
            + ("; a curve of one point has error bars" if what == "bands" else ""))


def preprocess_text(values: Iterable[Any]) -> str:
    """The preprocessing of the rows (``center-crop:256``), or ``none`` (the images as stored)."""
    kinds = sorted({str(v) for v in values if isinstance(v, str) and v}) or ["none"]
    if kinds == ["none"]:
        return "Preprocessing: none (images as stored)"
    return f"Preprocessing: {', '.join(kinds)}"


def speed_text(reports: Sequence[Mapping[str, Any]]) -> list[str]:
    """The clock, the repeats and the machine load a speed report recorded (or that it recorded none)."""
    parts = []
    for report in reports:
        codec = report.get("codec", "codec")
        settings = report.get("settings") or {}
        env = report.get("env") or {}
        load = report.get("load") or {}
        where = ", ".join(str(v) for v in (env.get("device_name") or env.get("device"),
                                           f"{env['threads']} threads" if env.get("threads") else None) if v)
        rounds = (f"median of {settings['repeats']} timed rounds after {settings.get('warmup', 0)} warm-up rounds"
                  if settings.get("repeats") else "median of the timed rounds")
        text = f"{codec}: wall-clock decode time per image, {rounds}" + (f", on {where}" if where else "")
        if load.get("peak_1min") is not None:
            text += (f"; machine load at measurement: 1-minute load average up to {load['peak_1min']:g} on "
                     f"{load.get('cores', '?')} cores" + (" (busy: wall times inflated)" if load.get("busy") else ""))
        elif env.get("load_before"):
            moments = [f"{'/'.join(f'{v:g}' for v in env[k])} at the {when}"
                       for k, when in (("load_before", "start"), ("load_after", "end")) if env.get(k)]
            text += "; machine load at measurement: 1/5/15-minute load averages " + ", ".join(moments)
        else:
            text += "; machine load: not recorded in this report (made before cdc-bench recorded it)"
        parts.append(text)
    return parts


def sweep_load_text(runs: Sequence[Mapping[str, Any]], run_ids: Iterable[Any]) -> str:
    """The machine load the sweeps behind ``run_ids`` recorded (their manifests' ``load``), for a decode-time panel."""
    wanted = {str(r) for r in run_ids}
    used = [run for run in runs if str(run.get("run_id")) in wanted]
    loads = [run["load"] for run in used if isinstance(run.get("load"), Mapping) and run["load"].get("peak_1min")
             is not None]
    if not loads:
        return ("machine load: not recorded (these rows come from sweeps made before cdc-bench recorded it; "
                "`cdc-bench speed` times decoding under a load watch)")
    peak = max(float(load["peak_1min"]) for load in loads)
    cores = max(int(load.get("cores") or 0) for load in loads) or "?"
    workers = sorted({int(run["settings"]["workers"]) for run in used
                      if isinstance((run.get("settings") or {}).get("workers"), int)})
    text = (f"machine load during the sweep: 1-minute load average up to {peak:g} on {cores} cores"
            + (f", its own {'/'.join(map(str, workers))} worker(s) included" if workers else ""))
    if isinstance(cores, int) and peak > cores:
        text += " (busy: other processes competed for the CPU, so decode times are inflated)"
    if len(loads) < len(used):
        text += f"; not recorded for {len(used) - len(loads)} older sweep(s)"
    return text


def captions_of(figures: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """``(caption file, text)`` of each written figure that has one, once per figure stem: what a command prints."""
    found = {}
    for figure in figures:
        path = caption_of(figure)
        if path not in found and path.is_file():
            found[path] = path.read_text(encoding="utf-8").strip()
    return list(found.items())
