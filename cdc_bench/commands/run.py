"""``cdc-bench run``: sweep datasets x codecs x rate points x images into a results store."""

from __future__ import annotations

import re
import time
from pathlib import Path

import click

from ..sweep import preflight
from ..codecs.base import CodecError
from ..codecs.plans import split_list
from ..registry import UnknownNameError

DEFAULT_CODECS = "jpeg,webp,hevc"
#: A bare `cdc-bench run` is a quick demonstration (well under a minute on 2 cores) that still draws real curves.
DEMO_RATES = {"jpeg": "10,30,50,70,90", "webp": "10,30,50,70,90", "hevc": "42,37,32,27,22"}
DEMO_PREPROCESS = "center-crop:256"
#: What the demonstration stands for: the classical Kodak sweep (24 images of 768 x 512 at the default points).
FULL_SWEEP = "cdc-bench run --datasets kodak --codecs jpeg,webp,hevc --download"
FULL_SWEEP_ITEMS, FULL_SWEEP_PIXELS = 24 * (19 + 19 + 8), 768 * 512


def default_out(datasets: list[str]) -> Path:
    """``results/<datasets>``: the same command resumes into the same folder."""
    from ..store.key import safe_file_stem

    name = "+".join(safe_file_stem(d.rstrip("/").rpartition("/")[2] or d) for d in datasets)
    return Path("results") / name


@click.command("run")
@click.option("--datasets", "-d", default="default", show_default=True,
              help="Comma-separated dataset names (see `cdc-bench datasets`) or folder:PATH.")
@click.option("--codecs", "-c", default=DEFAULT_CODECS, show_default=True,
              help="Comma-separated codec names (see `cdc-bench codecs`).")
@click.option("--qualities", "-q", default=None, help="Rate points for every codec, e.g. 10,50,90 "
              "(per codec: -o jpeg.qualities=10,50).")
@click.option("--target-bpp", type=preflight.TARGETS, default=None, metavar="BPP,BPP,...",
              help="Matched bitrates: instead of fixed rate points, find per image and codec the rate point whose "
                   "real bpp meets each target (bisection on continuous knobs, a choice among listed points).")
@click.option("--match", type=click.Choice(["below", "nearest"]), default="below", show_default=True,
              help="With --target-bpp: the highest bpp not above the target, or the nearest on either side.")
@click.option("--option", "-o", "options", multiple=True, metavar="CODEC.KEY=VALUE",
              help="A codec option, e.g. -o jpeg.subsampling=444 (repeatable).")
@click.option("--metrics", "-m", default="psnr,ms-ssim", show_default=True,
              help="Comma-separated metrics (psnr, ms-ssim, lpips, fid, kid, ...).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder [default: results/<datasets>]. Rerunning into it resumes.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="CDC_BENCH_DATA", help="Folder holding local dataset copies (DIR/kodak/kodim01.png ...).")
@click.option("--download/--no-download", default=False,
              help="Download missing datasets and weight files (sha256-verified).")
@click.option("--preprocess", default="none", show_default=True,
              help="none | center-crop:N | resize-crop:N (CDC's DIV2K protocol: resize-crop:768).")
@click.option("--workers", "-j", type=preflight.WORKERS, default=1, show_default=True,
              help="Worker processes (0: run in this process, no per-item timeout).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images of each dataset.")
@click.option("--device", type=preflight.DEVICE, default="auto", show_default=True, help="cpu, cuda, cuda:1 or auto.")
@click.option("--timeout", type=preflight.TIMEOUT, default="1800", show_default=True,
              help="Seconds one item may take before its worker is stopped and the item marked 'timeout' "
                   "('none': no timeout).")
@click.option("--save-recon", is_flag=True, help="Keep every reconstruction as PNG under OUT/recon/.")
@click.option("--retry-errors", is_flag=True, help="Recompute rows that ended in error or timeout.")
@click.option("--fid-protocol", type=preflight.FID_PROTOCOL, default="fid256", show_default=True,
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
            scheduler, shared_fs, batch, quiet) -> None:
    """Encode, decode and measure every image at every rate point of every codec.

    Each result is written as soon as it is measured; a killed run resumes where it stopped when the same
    command is run again. Bare `cdc-bench run` sweeps jpeg, webp and hevc over the embedded default images.
    """
    from ..datasets import DatasetError, get_dataset
    from ..executors.local import InlineExecutor
    from ..datasets.images import Preprocess, pixel_limit
    from ..provenance import build_manifest, new_run_id
    from ..metrics import get_metric
    from ..codecs.plans import build_plans
    from ..sweep.client import plan_tasks, sweep
    from ..store.results import ResultsStore

    demo = _is_bare(click.get_current_context())
    if demo:
        options = tuple(options) + tuple(f"{c}.qualities={r}" for c, r in DEMO_RATES.items())
        preprocess = DEMO_PREPROCESS
        click.echo(f"A quick demonstration: {len(DEMO_RATES)} codecs x 5 rate points on the 5 embedded photographs "
                   f"({DEMO_PREPROCESS} crops). The full classical sweep: {FULL_SWEEP}", err=True)
    dataset_names, codec_names, metric_names = split_list(datasets), split_list(codecs), split_list(metrics)
    try:
        plans = build_plans(codec_names, options, qualities)
        metric_infos = [get_metric(m) for m in metric_names]
        pre = Preprocess.parse(preprocess)
        pixel_limit()  # a bad $CDC_BENCH_MAX_PIXELS fails now, not in every item
    except (UnknownNameError, CodecError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    checked = preflight.check_run(plans, metric_infos, device, download, skip_unavailable,
                                  warn=lambda text: click.echo(f"Warning: {text}", err=True))
    plans, metric_infos = checked.plans, checked.metrics
    metric_names = [m.name for m in metric_infos]

    # Resolve datasets before any work, so a missing file fails now, not after an hour.
    dataset_images = []
    try:
        for name in dataset_names:
            dataset = get_dataset(name, data_root, download=download)
            if dataset.name in {d for d, _ in dataset_images}:  # given twice: computed once
                click.echo(f"Note: dataset {dataset.name} is given more than once; it is run once", err=True)
                continue
            items = dataset.images()[:limit] if limit else dataset.images()
            dataset_images.append((dataset.name, [(item.name, item.path) for item in items]))
    except UnknownNameError as err:
        raise click.UsageError(str(err)) from None
    except DatasetError as err:
        raise click.ClickException(str(err)) from None

    out = out or default_out(dataset_names)
    store = ResultsStore(out)
    tasks = plan_tasks(dataset_images, plans, preprocess=str(pre), metrics=tuple(metric_names), device=device,
                       save_recon=save_recon, fid_protocol=fid_protocol, target_bpp=target_bpp or (), match=match)
    run_id = new_run_id()
    settings = {"datasets": [d for d, _ in dataset_images], "codecs": [vars(p) for p in plans],
                "metrics": metric_names, "preprocess": str(pre), "workers": workers, "limit": limit,
                "timeout_s": timeout, "fid_protocol": fid_protocol, "data_root": str(data_root or ""),
                "skipped_unavailable": checked.skipped, "target_bpp": list(target_bpp or ()),
                "match": match if target_bpp else None, "batch": batch}
    pool = _executor(executor, scheduler, workers, device, shared_fs)
    settings.update(pool.info() if hasattr(pool, "info") else {"executor": "local" if workers else "inline"})
    manifest = build_manifest(run_id, settings, device)
    store.start_run(run_id, manifest)
    failures: list[str] = []

    def report(row):
        if row["status"] != "ok":
            failures.append(f"{row['dataset']}/{row['image']} {row['codec']} q={row['quality']}: "
                            f"{row['status']}: {row.get('error')}")

    try:
        summary = sweep(tasks, store, pool, run_id=run_id,
                        timeout=None if isinstance(pool, InlineExecutor) else timeout, retry_errors=retry_errors,
                        progress=not quiet, on_row=report, batch=batch)
    finally:
        if hasattr(pool, "info"):
            settings.update(pool.info())  # the manifest lists every worker's versions, late joiners too
        if hasattr(pool, "close"):
            pool.close()
    dataset_rows = []
    if any(info.dataset_level for info in metric_infos):
        from ..sweep.dataset_metrics import compute_dataset_metrics

        dataset_rows = compute_dataset_metrics(store, [m.name for m in metric_infos if m.dataset_level],
                                               protocol=fid_protocol)
    manifest.update(ended_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), summary=summary.as_dict())
    store.end_run(run_id, manifest)
    _print_summary(store, summary, failures, out, dataset_rows)
    store.close()
    if summary.failed and not summary.ok and not summary.skipped:
        raise click.ClickException(f"no item succeeded ({summary.failed} failed); see the messages above")
    if demo:
        click.echo(_full_sweep_estimate(summary, tasks, workers), err=True)


def _is_bare(ctx: click.Context) -> bool:
    """True when no option that chooses the work was given: the user typed a bare `cdc-bench run`."""
    chosen = ("datasets", "codecs", "qualities", "target_bpp", "options", "preprocess", "limit")
    return all(ctx.get_parameter_source(name) in (click.core.ParameterSource.DEFAULT, None) for name in chosen)


def _full_sweep_estimate(summary, tasks, workers: int) -> str:
    """How long the full Kodak sweep would take here, from this run's measured time per item and pixel."""
    if not summary.ok:
        return f"Next: {FULL_SWEEP} (cdc-bench plot RESULTS draws the curves)."
    pixels = sum(_pixels(t) for t in tasks) / max(1, len(tasks))
    per_item = summary.work_s / summary.ok * FULL_SWEEP_PIXELS / max(pixels, 1.0)
    minutes = FULL_SWEEP_ITEMS * per_item / max(1, workers) / 60
    return (f"Next: {FULL_SWEEP}: {FULL_SWEEP_ITEMS} items; at this run's {summary.work_s / summary.ok:.2f} s per "
            f"item scaled to 768x512 pixels, about {minutes:.0f} min here with {max(1, workers)} worker(s) "
            f"(--workers N to use more cores). Then: cdc-bench plot results/kodak")


def _pixels(task) -> float:
    size = re.search(r"crop:(\d+)", task.preprocess)
    return float(int(size.group(1)) ** 2) if size else float(FULL_SWEEP_PIXELS)


def _executor(kind: str, scheduler: str | None, workers: int, device: str, shared_fs: bool):
    """The engine: a local pool (pebble), this process (--workers 0), or Dask (started here, link printed)."""
    from ..executors.local import InlineExecutor, ProcessExecutor

    if kind == "local" and not scheduler:
        return InlineExecutor() if workers == 0 else ProcessExecutor(workers)
    from ..executors.dask import DaskExecutor

    pool = DaskExecutor(scheduler, max(1, workers), device=device, shared_fs=shared_fs).start()
    info = pool.info()
    where = f"scheduler {info['scheduler']}" if scheduler else f"local cluster at {info['scheduler']}"
    link = pool.dashboard_link()
    click.echo(f"Dask: {info['workers']} workers, {where}; dashboard: {link or 'unavailable (pip install bokeh)'}",
               err=True)
    return pool


def _print_summary(store, summary, failures, out, dataset_rows) -> None:
    """Failures first, then the means of what succeeded; a run where nothing succeeded says so plainly."""
    from rich.console import Console
    from rich.markup import escape

    from ..analysis.summary import mean_table

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
        console.print(f"{row['dataset']} {row['codec']} q={row['quality']} {row['metric']} "
                      f"({row['protocol']}, {row['n_patches']} patches): {row['value']:.4f}{std}")
    console.print(f"{summary.ok} items measured, {summary.failed} failed, {summary.skipped} already in the store; "
                  f"{summary.wall_s:.1f} s. Results: {out / 'results.sqlite'} and {out / 'results.csv'}")
