"""``cdc-bench table``: BD-rate and BD-metric of every codec against an anchor, with paired bootstrap intervals."""

from __future__ import annotations

from pathlib import Path

import click

from .plot import bootstrap_from, ci_options


@click.command("table")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--anchor", required=True, help="Anchor curve: a codec name (hevc) or a curve label 'cdc (steps=65)'.")
@click.option("--metrics", help="Comma-separated metrics (default: all with values).")
@click.option("--format", "fmt", type=click.Choice(["md", "latex", "csv"]), default="md", show_default=True)
@click.option("--method", type=click.Choice(["pchip", "akima", "cubic"]), default="pchip", show_default=True,
              help="Interpolation of the bjontegaard package; pchip is the JCT-VC/JVET convention.")
@click.option("--bpp-range", help="Compare only inside this rate window LO,HI (bpp); the footnote says so.")
@click.option("--codecs", help="Only these codecs (comma-separated; the anchor is always kept).")
@click.option("--per-image", is_flag=True, help="BD-rate of each image against the anchor, and who wins how often.")
@click.option("--figure", type=click.Path(dir_okay=False, path_type=Path),
              help="With --per-image: also draw the distribution to FIGURE_<dataset>_<metric>.png/.pdf.")
@click.option("--ms-ssim-db/--ms-ssim-linear", default=True, show_default=True,
              help="BD of MS-SSIM on -10 log10(1 - MS-SSIM) in dB (as `report` and the figures, and as CompressAI "
                   "plots it) or on linear MS-SSIM; the two give different BD-rates, and the table says which.")
@click.option("--include-unmet", is_flag=True,
              help="Keep matched-bitrate points whose target was not met (--target-bpp rows above their target) "
                   "in the BD computation; by default they are left out, and a footnote says so either way.")
@ci_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (default: stdout).")
def command(results, anchor, metrics, fmt, method, bpp_range, codecs, per_image, figure, ms_ssim_db, include_unmet, ci_level, no_ci, ci_method,
            resamples, seed, out) -> None:
    """BD-rate (% bits at equal quality; negative = better) and BD-metric (quality at equal rate) tables.

    Each value carries a paired bootstrap interval over images (`-12.3% [-15.1, -9.8]`), marked ° when it
    contains 0. Where curves overlap on less than 75% of the range, or not at all, or a curve's quality is not
    monotonic in rate, the table marks the cell and names the curve. RESULTS may be several folders.
    """
    from ..analysis.bdrate import bd_table
    from ..analysis.tables import to_csv, to_latex, to_markdown
    from ..analysis.curves import ok_rows, rd_points
    from ..analysis.inputs import InputError, load_many, only_codecs, parse_metrics, parse_range
    from ..codecs.plans import split_list
    from ..analysis.perimage import per_image_bd, summary_lines
    from ..plots.perimage import plot_per_image

    boot = bootstrap_from(ci_level, no_ci, ci_method, resamples, seed)
    window = parse_range(bpp_range, "--bpp-range")
    res = load_many(results)
    frame, dropped = ok_rows(res.frame)
    if codecs:
        frame = only_codecs(frame, split_list(codecs), keep=[anchor.split(" (")[0]])
    if frame.empty:
        raise InputError(f"no successful rows in {', '.join(map(str, results))}")
    specs = parse_metrics(metrics, res, ms_ssim_db)
    points = rd_points(frame, specs, res.dataset_metrics)
    if per_image:
        tidy = per_image_bd(points, frame, anchor, specs, method, window, include_unmet)
    else:
        tidy = bd_table(points, anchor, specs, method, frame=frame, boot=boot, bpp_range=window,
                        include_unmet=include_unmet)
    if tidy.empty:
        raise click.ClickException("nothing to compare: the results hold only the anchor")
    if per_image:
        text = _per_image_text(tidy, fmt)
    else:
        text = {"md": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](tidy)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        click.echo(f"{out} ({len(frame)} rows used, {dropped} left out: status not ok)", err=True)
    else:
        click.echo(text, nl=False)
        if dropped:  # on stderr, so that stdout stays a clean table
            click.echo(f"({len(frame)} rows used, {dropped} left out: status not ok)", err=True)
    if per_image:
        from ..analysis.matched import drop_unmet

        for line in drop_unmet(points, include_unmet)[1] + summary_lines(tidy):
            click.echo(line, err=True)
        if figure:
            stem = figure.with_suffix("") if figure.suffix else figure
            from ..plots.captions import captions_of

            paths = plot_per_image(tidy, stem, ["png", "pdf"], preprocess=frame.get("preprocess", ()))
            for path in paths:
                click.echo(str(path), err=True)
            for path, text in captions_of(paths):
                click.echo(f"{path}: {text}", err=True)


def _per_image_text(tidy, fmt: str) -> str:
    if fmt == "csv":
        return tidy.to_csv(index=False)
    wide = tidy.pivot_table(index=["dataset", "metric", "image"], columns="codec", values="bd_rate_pct")
    wide = wide.map(lambda v: f"{v:+.1f}" if v == v else "n/a")
    if fmt == "latex":
        return wide.style.to_latex(hrules=True)
    return f"BD-rate [%] per image against {tidy['anchor'].iloc[0]} (negative = fewer bits)\n\n" \
        + wide.reset_index().to_markdown(index=False) + "\n"
