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
def command(results: Path, fmt: str, output: Path | None) -> None:
    """Export a results folder written by `cdc-bench run`."""
    from ..errors import StoreError
    from ..export import export_compressai, export_rows
    from ..store import ResultsStore

    with ResultsStore(results, create=False) as store:  # read-only: export works on a folder you cannot write
        try:
            if fmt == "compressai-json":
                paths = export_compressai(store, output or results / "export" / "compressai")
                if not paths:
                    failed = store.frame()
                    raise click.ClickException(
                        f"no successful results in {results} to export ({len(failed)} rows, none with status ok; "
                        "see the error column of results.csv)")
                for path in paths:
                    click.echo(str(path))
                return
            path = export_rows(store, output or results / "export" / f"results.{fmt}", fmt)
        except OSError as err:
            raise StoreError(f"cannot write the export ({err}); pass --output to a writable place") from None
    click.echo(str(path))
