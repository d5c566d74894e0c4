"""``cdc-bench metrics``: every registered metric with its conventions, and whether it can run here."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _range_text(bounds) -> str:
    if bounds is None:
        return ""
    low, high = ("-inf" if bounds[0] is None else f"{bounds[0]:g}", "inf" if bounds[1] is None else f"{bounds[1]:g}")
    return f"[{low}, {high}]"


@click.command("metrics")
def command() -> None:
    """List every metric: column, unit, direction, range, per image or dataset, weights, and its state here."""
    from ..metrics import METRIC_PRESETS, get_metric, metric_names
    from ..sweep.preflight import merge, metric_problems

    console = Console(width=160, emoji=False)
    table = Table(show_lines=False)
    for col in ("metric", "column", "label", "better", "range", "level", "weights", "status"):
        table.add_column(col, overflow="fold")
    for name in metric_names():
        try:
            info = get_metric(name)
        except ImportError as err:
            table.add_row(escape(name), "", "", "", "", "", "", f"[red]cannot import[/red]: {escape(str(err))}")
            continue
        problems = merge(metric_problems(name))
        status = ("[green]ready[/green]" if not problems else
                  "\n".join(f"[yellow]{escape(p.kind)}[/yellow]: {escape(p.what)}; fix: {escape(p.fix)}"
                            for p in problems))
        better = "lower" if info.lower_better else ("higher" if info.lower_better is False else "?")
        table.add_row(escape(name), escape(info.column), escape(info.unit_label), better, _range_text(info.range),
                      "dataset" if info.dataset_level else "image", escape(", ".join(info.weights)), status)
    console.print(table)
    for preset, members in METRIC_PRESETS.items():
        console.print(f"preset [bold]{escape(preset)}[/bold]: --metrics {escape(','.join(members))}")
