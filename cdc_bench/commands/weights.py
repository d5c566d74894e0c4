"""``cdc-bench weights``: every weight file the metrics and codecs need — present or not, URL, sha256, where."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import UnknownNameError


def select(weights: list, only: str | None) -> list:
    """The files named in ``--only``: weight file names, or codec/metric names (``cdc``, ``lpips``) for their files."""
    from ..codecs.plans import split_list

    if not only:
        return weights
    chosen: dict[str, object] = {}
    for name in split_list(only):
        matched = [w for w in weights if w.name == name] or [w for w in weights if name in w.used_by]
        if not matched:
            users = sorted({u for w in weights for u in w.used_by})
            raise UnknownNameError("weight file, codec or metric", name, [*(w.name for w in weights), *users])
        chosen.update((w.name, w) for w in matched)
    return list(chosen.values())


@click.command("weights")
@click.option("--download", is_flag=True, help="Fetch the missing files (verified by sha256).")
@click.option("--verify", is_flag=True, help="Also check the sha256 of every present file (reads each file); "
              "exits with status 1 when one fails.")
@click.option("--only", default=None, metavar="NAMES",
              help="Comma-separated weight file names, or codec/metric names for all their files (e.g. cdc,lpips).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (one object per file).")
@click.option("--import", "import_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              metavar="DIR", help="Install weight files carried in from another machine: each file in DIR (or its "
                                  "sub-folders) named as in the list (e.g. alexnet-owt-7be5be79.pth) is copied to "
                                  "where it is looked for, only when it matches its pinned sha256.")
def command(download: bool, verify: bool, only: str | None, as_json: bool, import_dir: Path | None) -> None:
    """List the weight files of every metric and codec; with --download, fetch the missing ones.

    Files are never downloaded mid-sweep: `cdc-bench run` checks them first and stops with this list's advice.
    A file that fails its sha256 is never used. On an offline machine, download each URL elsewhere and put the
    file at the path shown.
    """
    from ..sweep.catalog import all_weights
    from ..weights import WeightsMissing

    weights = select(all_weights(), only)
    if import_dir is not None:
        _import(import_dir, weights, only)
        return
    failures = []
    if download:
        for weight in weights:
            try:
                weight.ensure(allow_download=True)  # a present file is verified, not fetched again
            except WeightsMissing as err:  # absent and not fetched, or failing its sha256
                failures.append(str(err))
    checks = {w.name: w.verify() for w in weights} if verify else {}
    mismatched = [name for name, ok in checks.items() if ok is False]

    if as_json:
        import json

        click.echo(json.dumps([{"name": w.name, "used_by": w.used_by, "present": w.present(),
                                "path": str(w.locate() or w.path), "url": w.url, "sha256": w.sha256,
                                "sha256_ok": checks.get(w.name), "fallbacks": [f.name for f in w.fallbacks],
                                "note": w.note} for w in weights], indent=1))
        if failures or mismatched:
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
                status += {True: " [green]sha256 ok[/green]", False: " [red]sha256 MISMATCH[/red]",
                           None: " [yellow]no sha256 to check[/yellow]"}[checks[weight.name]]
        name = escape(weight.name) + (f"\n[dim]{escape(weight.note)}[/dim]" if weight.note else "")
        table.add_row(name, escape(", ".join(weight.used_by)), status, escape(str(where or weight.path)),
                      escape(weight.url) + f"\n{weight.sha256 or 'sha256 unknown'}")
    console.print(table)
    missing = [w.name for w in weights if not w.present()]
    for line in failures:
        console.print(f"[red]{escape(line)}[/red]", highlight=False)
    if mismatched:
        console.print(f"[red]sha256 mismatch[/red]: {escape(', '.join(mismatched))}. Such a file is never used: "
                      "delete it and run `cdc-bench weights --download --only NAME`, or put a verified copy there.",
                      highlight=False)
    if failures or mismatched:
        raise SystemExit(1)
    if missing:
        console.print(f"{len(missing)} missing: {', '.join(missing)}. Run `cdc-bench weights --download`, or on an "
                      "offline machine put each file at the path shown.", highlight=False)


def _import(folder: Path, weights: list, only: str | None) -> None:
    """Report of ``--import``: what was installed, what was refused and why; exit 1 when a file was refused."""
    from ..weights import import_weights

    report = import_weights(folder, weights)
    refused = [r for r in report if r.status in ("sha256 mismatch", "no sha256")]
    for r in report:
        if r.status == "not in folder" and not only:
            continue   # importing everything: files the folder does not carry are not worth a line each
        line = f"{r.weight.name}: {r.status}" + (f" ({r.source})" if r.source else "") + (
            f" -> {r.detail}" if r.status in ("imported", "already present") else f": {r.detail}")
        click.echo(line, err=r in refused)
    done = sum(r.status == "imported" for r in report)
    click.echo(f"{done} imported, {sum(r.status == 'already present' for r in report)} already present, "
               f"{len(refused)} refused from {folder}")
    if refused:
        raise SystemExit(1)
