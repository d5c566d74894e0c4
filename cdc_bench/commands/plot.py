"""``cdc-bench plot``: rate-quality, rate-distortion-perception and trace figures (PDF/PNG/SVG)."""

from __future__ import annotations

import math
from pathlib import Path

import click


KINDS = ("rd", "rdp", "trace")


def ci_options(func):
    """--ci/--no-ci, --ci-method, --resamples, --seed: shared by plot, table and report."""
    for option in reversed([
        click.option("--ci", "ci_level", type=click.FloatRange(50, 99.9), default=95.0, show_default=True,
                     callback=_finite_ci, help="Bootstrap confidence interval over images, in percent."),
        click.option("--no-ci", is_flag=True, help="No intervals (faster)."),
        click.option("--ci-method", type=click.Choice(["percentile", "BCa"]), default="percentile",
                     show_default=True, help="scipy.stats.bootstrap method of the intervals of means."),
        click.option("--resamples", type=click.IntRange(10), default=1000, show_default=True,
                     help="Bootstrap resamples (recorded in CSV output)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap."),
    ]):
        func = option(func)
    return func


def _finite_ci(ctx, param, value):
    """click's FloatRange lets NaN through (every comparison with it is false)."""
    if value is not None and math.isnan(value):
        raise click.BadParameter("nan is not a percentage; give 50 to 99.9, e.g. 95", ctx, param)
    return value


def check_formats(formats: str, allowed: tuple[str, ...] = ("pdf", "png", "svg")) -> list[str]:
    """``--format png,pdf`` as a list, refused (usage error) when empty or naming an unknown format."""
    from ..codecs.plans import split_list

    fmt = split_list(formats)
    bad = [f for f in fmt if f not in allowed]
    if bad or not fmt:
        raise click.UsageError(f"--format: unknown {', '.join(bad) or '(empty)'}; use {', '.join(allowed)}")
    return fmt


def bootstrap_from(ci_level: float, no_ci: bool, ci_method: str, resamples: int, seed: int):
    from ..analysis.stats import Bootstrap

    return None if no_ci else Bootstrap(ci_level / 100.0, ci_method, resamples, seed)


@click.command("plot")
@click.argument("results", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--kind", type=click.Choice(KINDS), default="rd", show_default=True,
              help="rd: bpp against each metric; rdp: distortion against perception at one rate, tracing a codec "
                   "option (--trace); trace: each metric and decode time against a codec option (e.g. steps).")
@click.option("--metrics", help="Comma-separated metrics, e.g. psnr,ms-ssim,lpips (default: all with values). "
                                "For --kind rdp: DISTORTION,PERCEPTION (default: psnr or ms-ssim against the first of lpips, "
                                "dists, lpips-vgg, fid, kid that the results hold).")
@click.option("--trace", "trace", metavar="CODEC.OPTION", help="The option traced by --kind rdp/trace, e.g. "
                                                                 "cdc.gamma or cdc.steps.")
@click.option("--bpp", "at_bpp", type=float, help="--kind rdp: the rate (default: the traced codec's median rate).")
@click.option("--format", "formats", default="pdf,png", show_default=True, help="Comma-separated: pdf, png, svg.")
@click.option("--width", type=click.Choice(["3.3", "6.9"]), default="3.3", show_default=True,
              help="Figure width in inches: 3.3 = one column of a two-column paper, 6.9 = full page width.")
@click.option("--reference", "references", multiple=True,
              help="Curve to overlay (dashed): compressai:<name>, hific, msillm, nogan (published), or your own "
                   ".json/.csv file (labelled by its file name). Repeatable.")
@click.option("--references-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of published results (default: the Kodak copies shipped with cdc-bench).")
@click.option("--codecs", help="Only these codecs (comma-separated).")
@click.option("--xlim", help="x-axis range LO,HI.")
@click.option("--ylim", help="y-axis range LO,HI.")
@click.option("--ms-ssim-db/--ms-ssim-linear", default=True, show_default=True,
              help="MS-SSIM as -10 log10(1 - MS-SSIM) in dB, as CompressAI plots it.")
@ci_options
@click.option("--speed", "speed_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON written by `cdc-bench speed --out`: also draw decode time against steps. Repeatable.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: RESULTS/figures of the first folder).")
def command(results, kind, metrics, trace, at_bpp, formats, width, references, references_dir, codecs, xlim, ylim,
            ms_ssim_db, ci_level, no_ci, ci_method, resamples, seed, speed_files, out) -> None:
    """Draw bpp against each metric: the dataset mean per rate point, one line per codec and option set, with a
    bootstrap interval over images as a band.

    RESULTS may be several folders: their curves share the figures. Rows whose status is not 'ok' are left out
    (and counted). Each figure is exactly --width inches wide so it drops into a paper at its nominal font size.
    """
    from ..analysis.curves import ok_rows, rd_points
    from ..analysis.inputs import InputError, load_many, parse_metrics, parse_range, published_for
    from ..codecs.plans import split_list
    from ..plots.rd import plot_rd
    from ..plots.speed import plot_speed
    from ..plots.trace import plot_rdp, plot_trace

    if not results and not speed_files:
        raise click.UsageError("give a RESULTS folder, or --speed JSON files, or both")
    fmt = check_formats(formats)
    if kind != "rd" and not trace:
        raise click.UsageError(f"--kind {kind} needs --trace CODEC.OPTION, e.g. --trace cdc.gamma")
    w = float(width)
    first = Path(results[0]) if results else None
    out = out or ((first if first.is_dir() else first.parent) / "figures" if first else Path("figures"))
    boot = bootstrap_from(ci_level, no_ci, ci_method, resamples, seed)
    written, warnings = [], []
    limits = {"xlim": parse_range(xlim, "--xlim"), "ylim": parse_range(ylim, "--ylim")}
    if results:
        res = load_many(results)
        frame, dropped = ok_rows(res.frame)
        if codecs:
            frame = frame[frame["codec"].isin(split_list(codecs))]
        if frame.empty:
            raise InputError(f"no successful rows in {', '.join(map(str, results))}"
                             + (f" for codecs {codecs}" if codecs else ""))
        if kind == "rd":
            specs = parse_metrics(metrics, res, ms_ssim_db)
            points = rd_points(frame, specs, res.dataset_metrics, boot)
            published = published_for(references, sorted(points["dataset"].unique()), references_dir)
            written += plot_rd(points, specs, out, fmt, w, published, ci=boot is not None, runs=res.runs,
                               warnings_out=warnings, boot=boot, **limits)
        else:
            if kind == "rdp":   # the perception metrics the results have, or a message saying how to add one
                from ..analysis.curves import metric_spec
                from ..plots.trace import rdp_metrics

                specs = rdp_metrics(metrics, parse_metrics(None, res, ms_ssim_db),
                                    lambda name: metric_spec(name, ms_ssim_db))
                click.echo(f"rdp: {specs[0].name} against {specs[1].name}")
            else:
                specs = parse_metrics(metrics, res, ms_ssim_db)
            draw = plot_rdp if kind == "rdp" else plot_trace
            written += draw(frame, specs, trace, out, fmt, w, boot=boot, at_bpp=at_bpp,
                            dataset_metrics=res.dataset_metrics, runs=res.runs, warnings_out=warnings, **limits)
        click.echo(f"{len(frame)} rows used, {dropped} left out (status not ok)")
    if speed_files:
        written += plot_speed(list(speed_files), out / "speed", fmt, w)
    for text in dict.fromkeys(warnings):
        click.echo(f"warning: {text}", err=True)
    from ..plots.captions import captions_of

    for path in written:
        click.echo(str(path))
    for path, text in captions_of(written):   # what a paper's author puts under each figure
        click.echo(f"{path}: {text}")
