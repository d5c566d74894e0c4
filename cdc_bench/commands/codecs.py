"""``cdc-bench codecs``: every codec, its rate points and options (with their help), available or not and why."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..codecs import describe_codecs


@click.command("codecs")
@click.option("--details", is_flag=True, help="Also show each codec's exact settings (library, flags).")
def command(details: bool) -> None:
    """List every codec: rate points, options, availability (with the fix when unavailable)."""
    console = Console(width=160, emoji=False)
    table = Table(show_lines=True)
    for col in ("codec", "rate points", "options", "status"):
        table.add_column(col, overflow="fold")
    for info in describe_codecs():
        rates = f"{info.rate_label}: {', '.join(map(str, info.rate_points))}" if info.rate_points else ""
        opts = "\n".join(f"{k}={spec.default}" + (f" [dim]({escape(spec.help)}; {escape(spec.describe())})[/dim]"
                                                 if details and spec.help else "")
                         for k, spec in (info.option_specs or {}).items())
        if info.availability.ok:
            status = "[green]available[/green]"
        else:
            status = f"[red]unavailable[/red]: {escape(info.availability.reason)}"
            if info.availability.fix:
                status += f"\n[yellow]fix[/yellow]: {escape(info.availability.fix)}"
        name = escape(info.name) + (f"\n[dim]{escape(info.description)}[/dim]" if info.description else "")
        if details and info.details:
            name += f"\n[dim]{escape(info.details)}[/dim]"
        table.add_row(name, escape(rates), opts, status)
    console.print(table)
