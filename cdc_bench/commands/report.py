"""``cdc-bench report``: one self-contained HTML page with the manifest, tables, figures and an image viewer."""

from __future__ import annotations

from pathlib import Path

import click

from .plot import bootstrap_from, ci_options


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="HTML file (default RESULTS/report.html).")
@click.option("--metrics", help="Comma-separated metrics (default: all with values).")
@click.option("--anchor", help="Anchor of the BD tables (default: hevc, bpg, ... whichever is present).")
@click.option("--reference", "references", multiple=True, help="Published curve to overlay (as in `plot`).")
@click.option("--references-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of published results (default: the copies shipped with cdc-bench).")
@click.option("--viewer-images", default=None,
              help="Images for the viewer, comma-separated (default: the first image with saved reconstructions). "
                   "Every reconstruction is embedded, so keep this short.")
@click.option("--lossless", is_flag=True, help="Embed the viewer's images losslessly (exact pixels; a much larger "
                                                "file) instead of lossy WebP at high quality.")
@click.option("--bpp-range", help="BD tables only inside this rate window LO,HI (bpp).")
@click.option("--ms-ssim-db/--ms-ssim-linear", default=True, show_default=True,
              help="MS-SSIM as -10 log10(1 - MS-SSIM) in dB, as CompressAI plots it, in figures and BD tables "
                   "(the same default as `table`); the tables say which.")
@ci_options
@click.option("--original", type=click.Path(exists=True, path_type=Path),
              help="Folder holding the originals (<image>.*) if the dataset cannot be found.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), help="Where datasets live.")
@click.option("--speed", "speed_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON from `cdc-bench speed`: add the speed figure. Repeatable.")
@click.option("--title", default=None, help="Page title.")
def command(results, out, metrics, anchor, references, references_dir, viewer_images, lossless, bpp_range,
            ms_ssim_db, ci_level, no_ci, ci_method, resamples, seed, original, data_root, speed_files, title) -> None:
    """Write one HTML file that needs nothing else: open it offline, mail it, archive it.

    RESULTS may be several folders; the page is written into the first one unless --out says otherwise."""
    from ..plots.compare import CompareError
    from ._originals import find_original
    from ..analysis.curves import ok_rows
    from ..analysis.inputs import InputError, load_many, parse_metrics, parse_range, published_for, run_data_root
    from ..codecs.plans import split_list
    from ..plots.report import build_report, data_uri, viewer_data
    from ..plots.speed import plot_speed
    from ..store.results import recon_path_for

    window = parse_range(bpp_range, "--bpp-range")
    res = load_many(results)
    frame, _ = ok_rows(res.frame)
    if frame.empty:
        raise InputError(f"no successful rows in {', '.join(map(str, results))}")
    codecs = sorted(frame["codec"].unique())
    if anchor is not None and anchor.split(" (")[0] not in codecs:   # was silently ignored: no BD table at all
        raise InputError(f"--anchor {anchor!r} is not among the codecs of these results: {', '.join(codecs)} "
                         "(or a curve label as `cdc-bench table` names it, e.g. 'cdc (steps=65)')")
    specs = parse_metrics(metrics, res, ms_ssim_db)
    published = published_for(references, sorted(frame["dataset"].unique()), references_dir)
    names = split_list(viewer_images)
    if not names:  # the first image that has any saved reconstruction
        for _, row in frame.iterrows():
            if recon_path_for(row.get("_out_dir") or res.out_dir, row).is_file():
                names = [row["image"]]
                break
    viewers = []
    root = data_root or run_data_root(res.runs)
    for name in names:
        rows = frame[frame["image"] == name]
        if rows.empty:
            raise InputError(f"--viewer-images: no successful results for image {name!r}")
        first = rows.iloc[0]
        try:
            reference = find_original(first["dataset"], name, first.get("preprocess"), original, root)
        except CompareError as err:
            click.echo(f"warning: viewer shows {name} without its original: {err}", err=True)
            reference = None
        viewers.append(viewer_data(res.out_dir, rows, name, reference, specs, first["dataset"], lossless))
    speed_uri = speed_caption = None
    if speed_files:
        from ..plots.captions import read_caption

        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            svg = plot_speed(list(speed_files), Path(tmp) / "speed", ["svg"])[0]
            speed_uri = data_uri(svg.read_bytes(), "image/svg+xml")
            speed_caption = read_caption(svg)
    page = build_report(res.frame, specs, runs=res.runs, dataset_metrics=res.dataset_metrics, anchor=anchor,
                        published=published, viewers=viewers, speed_svg=speed_uri, speed_caption=speed_caption,
                        title=title or f"cdc-bench report: {', '.join(Path(r).name for r in results)}",
                        boot=bootstrap_from(ci_level, no_ci, ci_method, resamples, seed), bpp_range=window)
    out = out or res.out_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    click.echo(f"{out} ({len(page) / 1e6:.1f} MB)")
