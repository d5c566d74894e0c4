"""``cdc-bench datasets``: every known dataset, where it is looked for, how much of it is there, its source."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table


@click.command("datasets")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="CDC_BENCH_DATA", help="Folder holding local dataset copies (DIR/kodak/kodim01.png ...).")
@click.option("--verify", is_flag=True, help="Also check every file's sha256 (slow for large sets).")
def command(data_root: Path | None, verify: bool) -> None:
    """List the known datasets: present/expected images, complete or not, where, source URL.

    Without --verify only presence and file sizes are checked. Exits with status 1 when --verify finds a
    corrupted file. Any folder of images can also be used as folder:PATH.
    """
    from ..datasets import dataset_names, default_data_root, get_dataset

    root = data_root or default_data_root()
    console = Console(width=160, emoji=False, highlight=False)
    table = Table(show_lines=False)
    for col in ("dataset", "images", "status", "where", "source"):
        table.add_column(col, overflow="fold")
    damaged = False
    for name in dataset_names():
        dataset = get_dataset(name, root)
        status = dataset.status(verify=verify)
        expected = "?" if status.expected is None else str(status.expected)
        if status.complete:
            state = "[green]complete[/green]" + (" (sha256 verified)" if status.verified else "")
        elif not status.where.exists() or status.present == 0:
            state = "[dim]absent[/dim]"
        else:
            bits = []
            if status.missing:
                bits.append(f"{len(status.missing)} missing")
            elif status.expected is not None and status.present < status.expected:
                bits.append(f"{status.expected - status.present} missing")
            elif status.expected is not None and status.present > status.expected:
                bits.append(f"{status.present - status.expected} more than expected")
            if status.corrupted:
                bits.append(f"{len(status.corrupted)} corrupted")
                damaged = True
            state = "[red]incomplete[/red]: " + ", ".join(bits)
        table.add_row(escape(name), f"{status.present}/{expected}", state, escape(str(status.where)),
                      escape(dataset.source_url))
    console.print(table)
    console.print(f"data root: {escape(str(root))} (--data-root or $CDC_BENCH_DATA to change). "
                  "Get a dataset with `cdc-bench download NAME`; use any folder of images as folder:PATH.")
    if damaged:
        raise SystemExit(1)
