"""``cdc-bench stablecodec-verify DIR``: run our StableCodec on tensors from the official code (the fixtures'
format, e.g. tests/baselines/stablecodec/fixtures) and print every check against its tolerance.

Exit status: 0 every check within tolerance, 1 some check out of tolerance, 2 the directory could not be used.
"""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table


class VerifyFailure(click.ClickException):
    exit_code = 2


@click.command("stablecodec-verify")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
def command(directory: Path, threads: int | None) -> None:
    """Check StableCodec numerics against reference tensors and bytes from the official code."""
    import torch

    from baselines.stablecodec.verify import VerifyError, verify_dir

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        checks = verify_dir(directory)
    except VerifyError as err:
        raise VerifyFailure(str(err)) from None
    table = Table(title=escape(f"StableCodec vs the official code's outputs in {directory}"))
    for col in ("check", "max |diff|", "tolerance", "result"):
        table.add_column(col)
    for c in checks:
        result = ("[green]ok[/green]" if c.ok else "[red]FAIL[/red]") + (f" {escape(c.note)}" if c.note else "")
        table.add_row(escape(c.name), f"{c.max_abs_diff:.3g}", "exact" if c.tolerance == 0 else f"{c.tolerance:g}",
                      result)
    console = Console(width=150, emoji=False, highlight=False)
    console.print(table)
    failed = [c for c in checks if not c.ok]
    console.print(f"{len(checks) - len(failed)}/{len(checks)} checks within tolerance (torch {torch.__version__}, "
                  f"{torch.get_num_threads()} threads)")
    if failed:
        raise SystemExit(1)
