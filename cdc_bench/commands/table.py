"""``cdc-bench table``: BD-rate and BD-metric of every codec against an anchor, for every metric."""

from __future__ import annotations

from pathlib import Path

import click

from ..registry import UnknownNameError


@click.command("table")
@click.argument("results", type=click.Path(exists=True, path_type=Path))
@click.option("--anchor", required=True, help="Anchor curve: a codec name (hevc) or a curve label 'cdc (steps=65)'.")
@click.option("--metrics", help="Comma-separated metrics (default: all with values).")
@click.option("--format", "fmt", type=click.Choice(["md", "latex", "csv"]), default="md", show_default=True)
@click.option("--method", type=click.Choice(["pchip", "akima", "cubic"]), default="pchip", show_default=True,
              help="Interpolation of the bjontegaard package; pchip is the JCT-VC/JVET convention.")
@click.option("--codecs", help="Only these codecs (comma-separated; the anchor is always kept).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (default: stdout).")
def command(results, anchor, metrics, fmt, method, codecs, out) -> None:
    """BD-rate (% bits at equal quality; negative = better) and BD-metric (quality at equal rate) tables.

    Where curves overlap on less than 75% of the range, or not at all, or quality is not monotonic in rate,
    the table marks the cell and says why.
    """
    from ..plots.bdrate import bd_table, to_csv, to_latex, to_markdown
    from ..plots.frames import ok_rows, rd_points
    from ..plots.inputs import InputError, load_results, parse_metrics, split_list

    try:
        res = load_results(results)
        frame, dropped = ok_rows(res.frame)
        if codecs:
            keep = set(split_list(codecs)) | {anchor.split(" (")[0]}
            frame = frame[frame["codec"].isin(keep)]
        if frame.empty:
            raise InputError(f"no successful rows in {results}")
        specs = parse_metrics(metrics, res)
        tidy = bd_table(rd_points(frame, specs, res.dataset_metrics), anchor, specs, method)
    except (InputError, UnknownNameError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    if tidy.empty:
        raise click.ClickException("nothing to compare: the results hold only the anchor")
    text = {"md": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](tidy)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        click.echo(f"{out} ({len(frame)} rows used, {dropped} left out: status not ok)", err=True)
    else:
        click.echo(text, nl=False)
        if dropped:  # on stderr, so that stdout stays a clean table
            click.echo(f"({len(frame)} rows used, {dropped} left out: status not ok)", err=True)
