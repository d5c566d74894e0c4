"""``cdc-bench plot``: rate-quality figures (PDF/PNG/SVG) from a results folder, and the speed figure."""

from __future__ import annotations

from pathlib import Path

import click

from ..registry import UnknownNameError


@click.command("plot")
@click.argument("results", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--metrics", help="Comma-separated metrics, e.g. psnr,ms-ssim,lpips (default: all with values).")
@click.option("--format", "formats", default="pdf,png", show_default=True, help="Comma-separated: pdf, png, svg.")
@click.option("--width", type=click.Choice(["3.3", "6.9"]), default="3.3", show_default=True,
              help="Figure width in inches: 3.3 = one column of a two-column paper, 6.9 = full page width.")
@click.option("--reference", "references", multiple=True,
              help="Published curve to overlay (dashed): compressai:<name>, hific, msillm, nogan, or a .json/.csv "
                   "file. Repeatable.")
@click.option("--references-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of published results (default: the Kodak copies shipped with cdc-bench).")
@click.option("--codecs", help="Only these codecs (comma-separated).")
@click.option("--speed", "speed_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON from `cdc-bench speed --json`: also draw decode time against steps. Repeatable.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: RESULTS/figures).")
def command(results, metrics, formats, width, references, references_dir, codecs, speed_files, out) -> None:
    """Draw bpp against each metric: the dataset mean per rate point, one line per codec and option set.

    Rows whose status is not 'ok' are left out (and counted). Each figure is exactly --width inches wide so it
    drops into a paper at its nominal font size.
    """
    from ..plots.frames import ok_rows, rd_points
    from ..plots.inputs import InputError, load_results, parse_metrics, published_for, split_list
    from ..plots.published import ReferenceError
    from ..plots.rd import plot_rd
    from ..plots.speed import SpeedReportError, plot_speed

    if results is None and not speed_files:
        raise click.UsageError("give a RESULTS folder, or --speed JSON files, or both")
    fmt = split_list(formats)
    bad = [f for f in fmt if f not in ("pdf", "png", "svg")]
    if bad or not fmt:
        raise click.UsageError(f"--format: unknown {', '.join(bad) or '(empty)'}; use pdf, png, svg")
    w = float(width)
    out = out or ((results if results.is_dir() else results.parent) / "figures" if results else Path("figures"))
    written = []
    try:
        if results is not None:
            res = load_results(results)
            frame, dropped = ok_rows(res.frame)
            if codecs:
                frame = frame[frame["codec"].isin(split_list(codecs))]
            if frame.empty:
                raise InputError(f"no successful rows in {results}" + (f" for codecs {codecs}" if codecs else ""))
            specs = parse_metrics(metrics, res)
            points = rd_points(frame, specs, res.dataset_metrics)
            published = published_for(references, sorted(points["dataset"].unique()), references_dir)
            written += plot_rd(points, specs, out, fmt, w, published)
            click.echo(f"{len(frame)} rows used, {dropped} left out (status not ok)")
        if speed_files:
            written += plot_speed(list(speed_files), out / "speed", fmt, w)
    except (InputError, ReferenceError, SpeedReportError, UnknownNameError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    for path in written:
        click.echo(str(path))
