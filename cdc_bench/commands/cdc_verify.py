"""``cdc-bench cdc-verify DIR``: run our CDC implementation on a directory of official reference tensors (the
fixtures' format) and print the max deviation of every tensor against its tolerance.

Exit status: 0 every tensor within tolerance (rounding flips at .5 within float error are warnings), 1 some
tensor out of tolerance or a genuine symbol flip (or, with --strict, any warning), 2 the directory could not be used.
"""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

EXIT_MISMATCH = 1
EXIT_ERROR = 2


class VerifyFailure(click.ClickException):
    exit_code = EXIT_ERROR


def _num(value: float) -> str:
    return "–" if value != value else f"{value:.3g}"  # NaN: not measured


@click.command("cdc-verify")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--failures-only", is_flag=True, help="Print only the tensors out of tolerance.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (TF32 is turned off).")
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too: a symbol flip at .5 within float error.")
def command(directory: Path, threads: int | None, failures_only: bool, device: str, strict: bool) -> None:
    """Check CDC numerics against reference tensors from the official code.

    DIRECTORY holds <variant>_config.json, <variant>_ckpt.pt and <variant>_expected.pt per variant, e.g.
    ../shared/reference/cdc/fixtures.
    """
    import torch

    from ..cdc.checkpoint import CheckpointError
    from ..cdc.verify import VerifyError, verify_dir

    if threads is not None:
        torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VerifyFailure(f"--device {device}: CUDA is not available here (torch {torch.__version__})")
    try:
        checks = verify_dir(directory, device)
    except (VerifyError, CheckpointError) as err:
        raise VerifyFailure(str(err)) from None
    console = Console(width=150, emoji=False, highlight=False)
    table = Table(title=escape(f"CDC numerics vs official reference tensors in {directory}"))
    for col, justify in (("variant", "left"), ("tensor", "left"), ("max |diff|", "right"),
                         ("max |ref|", "right"), ("tolerance", "left"), ("result", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in checks:
        if failures_only and c.ok and not c.warning:
            continue
        result = ("[yellow]WARN[/yellow]" if c.warning else "[green]ok[/green]") if c.ok else "[red]FAIL[/red]"
        if c.note:
            result += f" {escape(c.note)}"
        table.add_row(escape(c.variant), escape(c.tensor), _num(c.max_abs_diff), _num(c.max_abs_ref),
                      escape(c.tolerance), result)
    console.print(table)
    failed = [c for c in checks if not c.ok]
    warned = [c for c in checks if c.warning]
    console.print(f"{len(checks) - len(failed)}/{len(checks)} checks within tolerance"
                  f"{f', {len(warned)} with rounding-flip warnings' if warned else ''} "
                  f"(torch {escape(torch.__version__)}, {escape(device)}, {torch.get_num_threads()} threads)")
    if failed or (strict and warned):
        raise SystemExit(EXIT_MISMATCH)
