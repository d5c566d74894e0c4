"""``cdc-bench download``: fetch datasets into the data root, every file or zip verified by sha256."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape


@click.command("download")
@click.argument("names", nargs=-1, required=True)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="CDC_BENCH_DATA", help="Folder to put datasets in (DIR/kodak/kodim01.png ...).")
def command(names: tuple[str, ...], data_root: Path | None) -> None:
    """Download the named datasets (see `cdc-bench datasets`) and check them.

    Files already present with the right checksum are kept. A zip is checked against its sha256 before it is
    extracted; unsafe members (absolute paths, '..', links) reject it.
    """
    from ..datasets import DatasetError, UnknownNameError, default_data_root, get_dataset

    root = data_root or default_data_root()
    console = Console(width=160, emoji=False, highlight=False)
    failed = []
    for name in names:
        try:
            dataset = get_dataset(name, root, download=True)
            console.print(escape(dataset.status().summary()))
        except UnknownNameError as err:
            raise click.UsageError(str(err)) from None
        except DatasetError as err:
            console.print(f"[red]error[/red]: {escape(str(err))}")
            failed.append(name)
    if failed:
        raise click.ClickException(f"could not download: {', '.join(failed)}")
