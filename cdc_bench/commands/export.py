"""``cdc-bench export``: results as CSV, JSON, or CompressAI's result-JSON files."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "compressai-json"]), default="csv",
              show_default=True)
@click.option("--output", "-O", type=click.Path(path_type=Path), default=None,
              help="File (csv, json) or folder (compressai-json) [default: inside RESULTS/export/].")
@click.option("--fid-bootstrap", type=click.IntRange(0), default=0, show_default=True,
              help="FID interval: this many bootstrap resamples over patches (each a full Fréchet distance: "
                   "seconds per value); 0 = none. KID always carries its std over subsets.")
def command(results: Path, fmt: str, output: Path | None, fid_bootstrap: int) -> None:
    """Export a results folder written by `cdc-bench run`; FID/KID go to dataset_metrics.csv beside the CSV."""
    from ..errors import StoreError
    from ..analysis.export import export_compressai, export_rows
    from ..store.results import ResultsStore

    with ResultsStore(results, create=False) as store:  # read-only: export works on a folder you cannot write
        store.check()   # a damaged row or manifest is one line, whichever format
        try:
            if fmt == "compressai-json":
                paths = export_compressai(store, output or results / "export" / "compressai", fid_bootstrap)
                if not paths:
                    raise click.ClickException(
                        f"no successful results in {results} to export ({len(store.frame())} rows, none with "
                        "status ok; see the error column of results.csv)")
            else:
                paths = export_rows(store, output or results / "export" / f"results.{fmt}", fmt, fid_bootstrap)
        except OSError as err:
            raise StoreError(f"cannot write the export ({err}); pass --output to a writable place") from None
    for path in paths:
        click.echo(str(path))
