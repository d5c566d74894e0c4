"""The ``cdc-bench`` command line.

Each sub-command lives in its own module under :mod:`cdc_bench.commands` and exposes a click command named
``command``; this module only collects them, so commands can be added without editing a shared file.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import warnings

import click

from . import __version__, commands
from .errors import CdcBenchError


class _Group(click.Group):
    """Finds sub-commands lazily so that ``cdc-bench --help`` does not import torch."""

    def _modules(self) -> dict[str, str]:
        found = {}
        for mod in pkgutil.iter_modules(commands.__path__):
            if not mod.name.startswith("_"):
                found[mod.name.replace("_", "-")] = f"{commands.__name__}.{mod.name}"
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._modules())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = self._modules().get(name)
        if module is None:
            return None
        return importlib.import_module(module).command

    def invoke(self, ctx: click.Context):
        """Errors cdc-bench raises on purpose end in their message and exit code, never in a traceback."""
        try:
            return super().invoke(ctx)
        except CdcBenchError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cdc-bench")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def main(verbose: bool) -> None:
    """cdc-bench: rate-distortion-perception benchmarks for CDC and other image codecs."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    if not verbose:
        warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning is one line for the user (``warning: ...``), not Python's file:line and source (see --verbose)."""
    click.echo(f"warning: {message}", err=True)


if __name__ == "__main__":
    main()
