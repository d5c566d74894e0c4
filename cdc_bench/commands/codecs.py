"""``cdc-bench codecs``: every codec, its rate points and options (with their help), and whether it can run here.

Each codec is in one of three states, as the run's pre-flight check sees it: ready, weights missing (with the
command that fetches them), or dependency missing (a Python package or a binary, with the fix).
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..codecs.registry import describe_codecs
from ..sweep.preflight import DEPENDENCY_MISSING, READY, WEIGHTS_MISSING, codec_state


@click.command("codecs")
@click.option("--details", is_flag=True, help="Also show each codec's exact settings (library, flags).")
def command(details: bool) -> None:
    """List every codec: rate points, options, and its state (ready / weights missing / dependency missing)."""
    console = Console(width=160, emoji=False)
    table = Table(show_lines=True)
    for col in ("codec", "rate points", "options", "status"):
        table.add_column(col, overflow="fold")
    for info in describe_codecs():
        rates = f"{info.rate_label}: {', '.join(map(str, info.rate_points))}" if info.rate_points else ""
        opts = "\n".join(f"{k}={spec.default}" + (f" [dim]({escape(spec.help)}; {escape(spec.describe())})[/dim]"
                                                 if details and spec.help else "")
                         for k, spec in (info.option_specs or {}).items())
        if not info.availability.ok:
            state, reason, fix = DEPENDENCY_MISSING, info.availability.reason, info.availability.fix
        else:
            state, reason, fix = codec_state(info.name)
        colour = {READY: "green", WEIGHTS_MISSING: "yellow", DEPENDENCY_MISSING: "red"}.get(state, "red")
        status = f"[{colour}]{state}[/{colour}]" + (f": {escape(reason)}" if reason else "")
        if fix:
            status += f"\n[yellow]fix[/yellow]: {escape(fix)}"
        name = escape(info.name) + (f"\n[dim]{escape(info.description)}[/dim]" if info.description else "")
        if info.display_name:
            name += f"\n[dim]in legends: {escape(info.display_name)}[/dim]"
        if details and info.details:
            name += f"\n[dim]{escape(info.details)}[/dim]"
        table.add_row(name, escape(rates), opts, status)
    console.print(table)
