"""``cdc-bench run``: sweep datasets x codecs x rate points x images into a results store."""

from __future__ import annotations


import re
import sys
from pathlib import Path

import click

from . import _params
from ..sweep import preflight
from ..sweep.interrupts import SweepInterrupted
from ..codecs.base import CodecError
from ..codecs.plans import split_list
from ..registry import UnknownNameError

DEFAULT_CODECS = "jpeg,webp,hevc"
#: A bare `cdc-bench run` is a quick demonstration (well under a minute on 2 cores) that still draws real curves.
DEMO_RATES = {"jpeg": "10,30,50,70,90", "webp": "10,30,50,70,90", "hevc": "42,37,32,27,22"}
DEMO_PREPROCESS = "center-crop:256"
#: What the demonstration stands for: the classical Kodak sweep (24 images of 768 x 512 at the default points).
FULL_SWEEP = "cdc-bench run --datasets kodak --codecs jpeg,webp,hevc --download"
FULL_SWEEP_POINTS = {"jpeg": 19, "webp": 19, "hevc": 8}  # each codec's default rate points
FULL_SWEEP_ITEMS, FULL_SWEEP_PIXELS = 24 * sum(FULL_SWEEP_POINTS.values()), 768 * 512


@click.command("run")
@click.option("--datasets", "-d", default="default", show_default=True,
              help="Comma-separated dataset names (see `cdc-bench datasets`) or folder:PATH.")
@click.option("--codecs", "-c", default=DEFAULT_CODECS, show_default=True,
              help="Comma-separated codec names (see `cdc-bench codecs`).")
@click.option("--qualities", "-q", default=None, help="Rate points for every codec, e.g. 10,50,90 "
              "(per codec: -o jpeg.qualities=10,50).")
@click.option("--target-bpp", type=_params.TARGETS, default=None, metavar="BPP,BPP,...",
              help="Matched bitrates: instead of fixed rate points, find per image and codec the rate point whose "
                   "real bpp meets each target (bisection on continuous knobs, a choice among listed points); "
                   "`jpeg-ai` is JPEG AI's grid 0.03,0.06,0.12,0.25,0.5,0.75.")
@click.option("--match", type=click.Choice(["below", "nearest"]), default="below", show_default=True,
              help="With --target-bpp: the highest bpp not above the target, or the nearest on either side.")
@click.option("--option", "-o", "options", multiple=True, metavar="CODEC.KEY=VALUE",
              help="A codec option, e.g. -o jpeg.subsampling=444 (repeatable).")
@click.option("--metrics", "-m", default="psnr,ms-ssim", show_default=True,
              help="Comma-separated metrics (psnr, ms-ssim, lpips, fid, kid, ...; `cdc-bench metrics` lists them) "
                   "or presets: jpeg-ai (JPEG AI's objective set as far as computed here).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder [default: results/<datasets>]. Rerunning into it resumes.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="CDC_BENCH_DATA", help="Folder holding local dataset copies (DIR/kodak/kodim01.png ...).")
@click.option("--download/--no-download", default=False,
              help="Download missing datasets and weight files (sha256-verified).")
@click.option("--preprocess", default="none", show_default=True,
              help="none | center-crop:N | resize-crop:N (CDC's DIV2K protocol: resize-crop:768).")
@click.option("--workers", "-j", type=_params.WORKERS, default=1, show_default=True,
              help="Worker processes (0: run in this process, no per-item timeout).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images of each dataset.")
@click.option("--device", type=_params.DEVICE, default="auto", show_default=True, help="cpu, cuda, cuda:1 or auto.")
@click.option("--timeout", type=_params.TIMEOUT, default="1800", show_default=True,
              help="Seconds one item may take before its worker is stopped and the item marked 'timeout' "
                   "('none': no timeout).")
@click.option("--save-recon", is_flag=True, help="Keep every reconstruction as PNG under OUT/recon/.")
@click.option("--save-bitstreams", is_flag=True, help="Keep the exact bytes each codec produced (the ones whose "
              "length gives bpp) as .bin beside the reconstructions under OUT/recon/.")
@click.option("--retry-errors", is_flag=True, help="Recompute rows that ended in error or timeout.")
@click.option("--fid-protocol", type=_params.FID_PROTOCOL, default="fid256", show_default=True,
              help="fid256 (HiFiC's patches) or clean.")
@click.option("--skip-unavailable", is_flag=True, help="Leave out codecs and metrics that cannot run here "
              "(missing dependency or weights), with a warning, instead of stopping.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: a process pool on this machine; dask: a Dask cluster (--scheduler) or a local one.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:8786",
              help="Address of a running Dask scheduler (implies --executor dask).")
@click.option("--shared-fs", is_flag=True,
              help="Dask workers read the images from their paths (a shared folder) instead of receiving the bytes.")
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True,
              help="Decode up to N same-size images of one rate point in one call (learned codecs: one network "
                   "call per step for the batch); each row gets decode_s = batch time / n and decode_batch = n.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(datasets, codecs, qualities, target_bpp, match, options, metrics, out, data_root, download, preprocess,
            workers, limit, device, timeout, save_recon, retry_errors, fid_protocol, skip_unavailable, executor,
            scheduler, shared_fs, batch, quiet, save_bitstreams) -> None:
    """Encode, decode and measure every image at every rate point of every codec.

    Each result is written as soon as it is measured; a killed run resumes where it stopped when the same
    command is run again. Bare `cdc-bench run` sweeps jpeg, webp and hevc over the embedded default images.
    """
    from ..datasets import DatasetError
    from ..store.results import ResultsStore
    from ..sweep import api

    demo = _is_bare(click.get_current_context())
    if demo:
        options = tuple(options) + tuple(f"{c}.qualities={r}" for c, r in DEMO_RATES.items())
        preprocess = DEMO_PREPROCESS
        click.echo(f"A quick demonstration: {len(DEMO_RATES)} codecs x 5 rate points on the 5 embedded photographs "
                   f"({DEMO_PREPROCESS} crops). The full classical sweep: {FULL_SWEEP}", err=True)
    if qualities and target_bpp:   # -q would be silently ignored: the search picks the rate point itself
        raise click.UsageError(f"-q {qualities} and --target-bpp both choose the rate points, and --target-bpp "
                               "wins (it searches each codec's whole rate range for the bpp): drop -q, or drop "
                               "--target-bpp to run exactly those rate points")
    if not split_list(metrics):   # -m '' (an empty shell variable) silently measured bpp alone
        raise click.UsageError(f"-m {metrics!r} names no metric; give at least one, e.g. -m psnr,ms-ssim "
                               "(`cdc-bench metrics` lists them)")
    try:
        outcome = api.run(split_list(datasets), split_list(codecs), qualities=qualities, options=options,
                          metrics=split_list(metrics), out=out, data_root=data_root, download=download,
                          preprocess=preprocess, workers=workers, limit=limit, device=device, timeout=timeout,
                          save_recon=save_recon, retry_errors=retry_errors, fid_protocol=fid_protocol,
                          skip_unavailable=skip_unavailable, executor=executor, scheduler=scheduler,
                          shared_fs=shared_fs, batch=batch, target_bpp=target_bpp or (), match=match,
                          progress=not quiet, warn=lambda text: click.echo(f"Warning: {text}", err=True),
                          on_executor=_announce, save_bitstreams=save_bitstreams)
    except preflight.PreflightFailed:
        raise  # its own table and exit status (cli.py)
    except SweepInterrupted as stop:  # Ctrl-C / SIGTERM: rows kept, manifest marked; not click's bare "Aborted!"
        click.echo(f"\nInterrupted ({stop})", err=True)
        sys.exit(stop.exit_code)
    except DatasetError as err:
        raise click.ClickException(str(err)) from None
    except (UnknownNameError, CodecError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    failures = [f"{r['dataset']}/{r['image']} {r['codec']} q={r['quality']}: {r['status']}: {r.get('error')}"
                for r in outcome.failures]
    summary = outcome.summary
    with ResultsStore(outcome.out, create=False) as store:
        _print_summary(store, summary, failures, outcome.out, outcome.dataset_rows)
        frame = store.frame() if demo else None
    if summary.failed and not summary.ok and not summary.skipped:
        raise click.ClickException(f"no item succeeded ({summary.failed} failed); see the messages above")
    if demo:
        click.echo(_full_sweep_estimate(summary, outcome.tasks, workers, frame, split_list(metrics)), err=True)


def _announce(pool) -> None:
    """Say where a Dask cluster is and where its dashboard is."""
    if not hasattr(pool, "dashboard_link"):
        return
    info = pool.info()
    where = f"scheduler {info['scheduler']}" if getattr(pool, "scheduler", None) else \
        f"local cluster at {info['scheduler']}"
    link = pool.dashboard_link()
    none = ("none (the scheduler serves no dashboard pages: started with --no-dashboard, or without bokeh)"
            if getattr(pool, "scheduler", None) else "unavailable (pip install bokeh)")
    click.echo(f"Dask: {info['workers']} workers, {where}; dashboard: {link or none}", err=True)


def _is_bare(ctx: click.Context) -> bool:
    """True when no option that chooses the work was given: the user typed a bare `cdc-bench run`."""
    chosen = ("datasets", "codecs", "qualities", "target_bpp", "options", "preprocess", "limit")
    return all(ctx.get_parameter_source(name) in (click.core.ParameterSource.DEFAULT, None) for name in chosen)


def _full_sweep_estimate(summary, tasks, workers: int, frame=None, metrics=()) -> str:
    """How long the full Kodak sweep would take here: per codec, a fixed cost per item (probed on a tiny image)
    plus this run's remaining time per pixel (:mod:`cdc_bench.sweep.estimate`), as a range."""
    if not summary.ok:
        return f"Next: {FULL_SWEEP} (cdc-bench plot RESULTS draws the curves)."
    from ..codecs.registry import create_codec
    from ..metrics import expand_metric_presets, get_metric
    from ..sweep.estimate import estimate_from_rows

    pixels = sum(_pixels(t) for t in tasks) / max(1, len(tasks))
    text = None
    if frame is not None and not frame.empty:
        middle = {codec: points.split(",")[len(points.split(",")) // 2] for codec, points in DEMO_RATES.items()}
        codecs = {codec: create_codec(codec) for codec in FULL_SWEEP_POINTS}
        computes = [info.compute for info in map(get_metric, expand_metric_presets(list(metrics))) if info.compute]
        text = estimate_from_rows(frame, {c: codecs[c].validate_rate(r) for c, r in middle.items()}, codecs,
                                  {c: 24 * n for c, n in FULL_SWEEP_POINTS.items()}, pixels, FULL_SWEEP_PIXELS,
                                  max(1, workers), computes)
    if text is None:
        per_item = summary.work_s / summary.ok * FULL_SWEEP_PIXELS / max(pixels, 1.0)
        text = (f"about {FULL_SWEEP_ITEMS * per_item / max(1, workers) / 60:.0f} min here with {max(1, workers)} "
                "worker(s) (scaled by pixels)")
    return (f"Next: {FULL_SWEEP}: {FULL_SWEEP_ITEMS} items, {text}; --workers N to use more cores. "
            "Then: cdc-bench plot results/kodak")


def _pixels(task) -> float:
    size = re.search(r"crop:(\d+)", task.preprocess)
    return float(int(size.group(1)) ** 2) if size else float(FULL_SWEEP_PIXELS)


def _print_summary(store, summary, failures, out, dataset_rows) -> None:
    """Failures first, then the means of what succeeded; a run where nothing succeeded says so plainly."""
    from rich.console import Console
    from rich.markup import escape

    from ..analysis.summary import mean_table
    from ..metrics import get_metric

    console = Console(width=140, emoji=False)
    for line in failures[:20]:
        console.print(f"[red]{escape(line)}[/red]", highlight=False)
    if len(failures) > 20:
        console.print(f"... and {len(failures) - 20} more failures (see {out / 'results.csv'})")
    frame = store.frame()
    if (frame["status"] == "ok").any():
        console.print(mean_table(frame))
    else:
        console.print("[red]No item succeeded[/red]: there are no measurements to summarise; the failures above "
                      "(and the error column of results.csv) say why.", highlight=False)
    noted = frame[frame["warnings"].notna() & (frame["warnings"] != "")] if "warnings" in frame else frame.iloc[:0]
    for text in list(dict.fromkeys(noted["warnings"]))[:5]:
        console.print(f"[yellow]note[/yellow]: {escape(text)}", highlight=False)
    if len(noted):
        console.print(f"{len(noted)} rows carry notes about their input (the warnings column of results.csv).")
    for row in dataset_rows:
        std = f" ± {row['std']:.4f}" if row.get("std") is not None else ""
        fewest = get_metric(row["metric"]).min_samples
        unreliable = (f" [yellow]UNRELIABLE[/yellow]: fewer than {fewest} patches (biased upward; compare only at "
                      "the same patch count)" if fewest and row["n_patches"] < fewest else "")
        console.print(f"{row['dataset']} {row['codec']} q={row['quality']} {row['metric']} "
                      f"({row['protocol']}, {row['n_patches']} patches): {row['value']:.4f}{std}{unreliable}",
                      highlight=False)
    console.print(f"{summary.ok} items measured, {summary.failed} failed, {summary.skipped} already in the store; "
                  f"{summary.wall_s:.1f} s. Results: {out / 'results.sqlite'} and {out / 'results.csv'}")
