"""``cdc-bench weights``: every weight file the metrics and codecs need — present or not, URL, sha256, where."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table


@click.command("weights")
@click.option("--download", is_flag=True, help="Fetch the missing files (verified by sha256).")
@click.option("--verify", is_flag=True, help="Also check the sha256 of every present file (reads each file).")
@click.option("--only", default=None, metavar="NAMES", help="Comma-separated weight names to show or fetch.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (one object per file).")
def command(download: bool, verify: bool, only: str | None, as_json: bool) -> None:
    """List the weight files of every metric and codec; with --download, fetch the missing ones.

    Files are never downloaded mid-sweep: `cdc-bench run` checks them first and stops with this list's advice.
    On an offline machine, download each URL elsewhere and put the file at the path shown.
    """
    from ..weights import WeightsMissing, all_weights

    weights = all_weights()
    if only:
        wanted = {n.strip() for n in only.split(",") if n.strip()}
        unknown = wanted - {w.name for w in weights}
        if unknown:
            raise click.UsageError(f"unknown weight file(s) {', '.join(sorted(unknown))}; "
                                   f"known: {', '.join(w.name for w in weights)}")
        weights = [w for w in weights if w.name in wanted]
    failures = []
    if download:
        for weight in weights:
            if weight.present():
                continue
            try:
                weight.ensure(allow_download=True)
            except WeightsMissing as err:
                failures.append(str(err))

    if as_json:
        import json

        click.echo(json.dumps([{"name": w.name, "used_by": w.used_by, "present": w.present(),
                                "path": str(w.locate() or w.path), "url": w.url, "sha256": w.sha256,
                                "sha256_ok": w.verify() if verify else None, "note": w.note} for w in weights],
                              indent=1))
        if failures:
            raise SystemExit(1)
        return
    console = Console(width=200, emoji=False)
    table = Table(show_lines=True)
    for col in ("weight", "used by", "status", "where", "url / sha256"):
        table.add_column(col, overflow="fold")
    for weight in weights:
        where = weight.locate()
        if where is None:
            status = "[red]missing[/red]"
        else:
            status = "[green]present[/green]"
            if verify:
                ok = weight.verify()
                status += {True: " [green]sha256 ok[/green]", False: " [red]sha256 MISMATCH[/red]",
                           None: " [yellow]no sha256 to check[/yellow]"}[ok]
        name = escape(weight.name) + (f"\n[dim]{escape(weight.note)}[/dim]" if weight.note else "")
        table.add_row(name, escape(", ".join(weight.used_by)), status, escape(str(where or weight.path)),
                      escape(weight.url) + f"\n{weight.sha256 or 'sha256 unknown'}")
    console.print(table)
    missing = [w.name for w in weights if not w.present()]
    if failures:
        for line in failures:
            console.print(f"[red]{escape(line)}[/red]", highlight=False)
        raise SystemExit(1)
    if missing:
        console.print(f"{len(missing)} missing: {', '.join(missing)}. Run `cdc-bench weights --download`, or on an "
                      "offline machine put each file at the path shown.", highlight=False)
