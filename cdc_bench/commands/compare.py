"""``cdc-bench compare``: the same crop of one image across codecs at the rate point nearest a bitrate."""

from __future__ import annotations

import math
from pathlib import Path

import click


def _parse_at(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give the crop's top-left corner as X,Y (pixels)") from None
    return x, y


def _positive_bpp(value: float) -> float:
    """A target rate is a finite number > 0: NaN matched nothing (a traceback), -1 or inf silently chose an end."""
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"{value:g}: give the target rate as a number of bits per pixel > 0, e.g. 0.5",
                                 param_hint="'--bpp'")
    return value


@click.command("compare")
@click.argument("results", type=click.Path(exists=True, path_type=Path))
@click.option("--image", required=True, help="Image name as in the results, e.g. kodim23.")
@click.option("--bpp", "target", type=float, required=True, callback=lambda ctx, param, value: _positive_bpp(value),
              help="Target rate: each codec shows its row matched to it (run --target-bpp), else its nearest rate point.")
@click.option("--crop", type=click.IntRange(min=8), default=256, show_default=True, help="Square crop size (px).")
@click.option("--at", "at_text", help="Top-left corner X,Y of the crop (default: centred).")
@click.option("--dataset", help="Dataset, when the image name occurs in several.")
@click.option("--codecs", help="Only these codecs (comma-separated).")
@click.option("--metrics", default="psnr,ms-ssim", show_default=True, help="Values printed under each tile.")
@click.option("--original", type=click.Path(exists=True, path_type=Path),
              help="The original image file (or a folder with <image>.*) if the dataset cannot be found.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), help="Where datasets live.")
@click.option("--format", "formats", default="png,pdf", show_default=True, help="Comma-separated: png, pdf, svg.")
@click.option("--width", type=click.Choice(["3.3", "6.9"]), default="6.9", show_default=True,
              help="Figure width in inches.")
@click.option("--columns", type=click.IntRange(min=1), help="Tiles per row (default: 4 at 6.9 in, 2 at 3.3 in).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default RESULTS/figures).")
def command(results, image, target, crop, at_text, dataset, codecs, metrics, original, data_root, formats, width,
            columns, out) -> None:
    """Tiles of one crop: original, then each codec at its rate point nearest to --bpp on this image, each
    labelled with codec, real bpp and metric values. Needs reconstructions saved by `cdc-bench run --save-recon`.
    """
    from ..plots.captions import captions_of
    from ..plots.compare import compare_caption, comparison_tiles, matched_rows, plot_tiles, rate_text
    from ._originals import find_original
    from ..analysis.inputs import load_results, run_data_root
    from ..codecs.plans import split_list
    from ..store.key import inside, file_stem
    from ..analysis.curves import metric_spec

    from .plot import check_formats

    formats = ",".join(check_formats(formats))   # before any work: a bad --format was a traceback at the end
    at = _parse_at(at_text)
    res = load_results(results)
    specs = [metric_spec(m) for m in split_list(metrics)]
    notes: list[str] = []   # points chosen among those with a saved reconstruction, and why
    rows = matched_rows(res.frame, image, target, dataset, split_list(codecs) or None, res.out_dir, notes)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    first = rows.iloc[0]
    root = data_root or run_data_root(res.runs)
    reference = find_original(first["dataset"], image, first.get("preprocess"), original, root)
    tiles = comparison_tiles(res.out_dir, rows, reference, crop, at, specs)
    out = out or res.out_dir / "figures"
    stem = inside(out, f"compare_{file_stem(first['dataset'])}_{file_stem(image)}_{target:g}bpp")
    written = plot_tiles(tiles, stem, split_list(formats), float(width), columns,
                         compare_caption(rows, image, target, crop))
    for _, row in rows.iterrows():
        if row["matched"]:
            click.echo(f"{row['label']:>12} at {rate_text(row['codec'], row['matched_rate'])}: {row['bpp']:.4f} bpp "
                       f"(matched to {row['quality']} by cdc-bench run --target-bpp)")
        else:
            click.echo(f"{row['label']:>12} at {rate_text(row['codec'], row['quality'])}: {row['bpp']:.4f} bpp "
                       f"(nearest of its rate points to {target:g} bpp)")
    for path in written:
        click.echo(str(path))
    for path, text in captions_of(written):
        click.echo(f"{path}: {text}")
