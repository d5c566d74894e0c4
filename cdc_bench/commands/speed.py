"""``cdc-bench speed``: encode/decode time and memory against denoising steps; regression check against a saved run.

Exit status: 0 measured (and no regression), 1 a median ratio exceeds ``--max-slowdown``, 2 the benchmark or the
comparison could not be done (bad arguments, unavailable codec, incomparable runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..codec import CodecError
from ..registry import UnknownNameError

EXIT_REGRESSION = 1
EXIT_ERROR = 2
PLOT_SUFFIXES = (".pdf", ".png", ".svg")


class SpeedFailure(click.ClickException):
    """Could not measure or compare: exit 2, so CI can tell it apart from a regression (exit 1)."""

    exit_code = EXIT_ERROR


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if abs(seconds) < 1 else f"{seconds:.3f} s"


def _rows_table(report: dict[str, Any]) -> Table:
    table = Table(title=escape(f"{report['codec']}: time per image (median [q1–q3], {report['settings']['repeats']} "
                               f"repeats after {report['settings']['warmup']} warm-up)"))
    for col in ("size", "steps", "encode", "decode", "decode÷steps", "bytes", "bpp", "peak RSS (MiB)", "CUDA (MiB)"):
        table.add_column(col, justify="right")
    for r in report["rows"]:
        enc, dec, mem = r["encode"], r["decode"], r["memory"]
        per_step = _fmt_s(dec["median"] / r["steps"]) if r["steps"] else "–"
        cuda = mem.get("decode_cuda_max_allocated_mib")
        table.add_row(
            f"{r['width']}x{r['height']}", str(r["steps"] if r["steps"] is not None else "–"),
            escape(f"{_fmt_s(enc['median'])} [{_fmt_s(enc['q1'])}–{_fmt_s(enc['q3'])}]"),
            escape(f"{_fmt_s(dec['median'])} [{_fmt_s(dec['q1'])}–{_fmt_s(dec['q3'])}]"),
            per_step, str(r["bytes"]), f"{r['bpp']:.4f}",
            f"{max(mem['encode_peak_rss_mib'], mem['decode_peak_rss_mib']):.0f}",
            f"{cuda:.0f}" if cuda is not None else "–")
    return table


def _fits_table(report: dict[str, Any]) -> Table:
    table = Table(title="least-squares fit: time = a + b·steps")
    for col in ("size", "phase", "a (fixed)", "b (per step)", "R²", "max rel. residual", "verdict"):
        table.add_column(col, justify="right")
    for f in report["fits"]:
        b_se = f" ± {_fmt_s(f['b_stderr'])}" if f.get("b_stderr") is not None else ""
        verdict = escape(f["note"]) if f["linear"] is not False else f"[red]{escape(f['note'])}[/red]"
        table.add_row(f"{f['width']}x{f['height']}", f["phase"], _fmt_s(f["a"]), _fmt_s(f["b"]) + b_se,
                      f"{f['r2']:.4f}", f"{f['max_rel_residual']:.1%}", verdict)
    return table


def _compare_table(comparison: Any, old_path: Path) -> Table:
    title = f"against {old_path} (ratio = new / old median; fail above {comparison.max_slowdown:g})"
    table = Table(title=escape(title))
    for col in ("size", "steps", "phase", "old", "new", "ratio", ""):
        table.add_column(col, justify="right")
    for r in comparison.rows:
        mark = "[red]SLOWER[/red]" if r.regressed else "ok"
        table.add_row(f"{r.width}x{r.height}", str(r.steps if r.steps is not None else "–"), r.phase,
                      _fmt_s(r.old_median), _fmt_s(r.new_median), f"{r.ratio:.3f}", mark)
    return table


def _codec_options(codec: str, option_args: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    from ..options import RATE_OPTION, options_for, parse_option_args

    parsed = parse_option_args(option_args)
    family = codec.partition(":")[0]
    stray = sorted(set(parsed) - {codec, family})
    if stray:
        raise CodecError(f"options given for {', '.join(stray)}, but the codec measured is {codec}")
    options = options_for(codec, parsed)
    return options, options.pop(RATE_OPTION, None)


@click.command("speed")
@click.option("--codec", "-c", required=True,
              help="Codec to measure (see `cdc-bench codecs`), e.g. cdc, cdc-eps, jpeg.")
@click.option("--steps", default=None, metavar="N,N,...",
              help="Step counts, e.g. 1,2,4,8,16,32,65 [default: the codec's own setting]. "
                   "Ignored (one row) for codecs without a steps option.")
@click.option("--size", "sizes", default="256x256", show_default=True, metavar="WxH[,WxH]",
              help="Image size(s), width x height, e.g. 768x512 or 256x256,768x512.")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed encodes and decodes per point.")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed encode+decode rounds first.")
@click.option("--option", "-o", "options", multiple=True, metavar="CODEC.KEY=VALUE",
              help="A codec option, e.g. -o cdc.weights=random (repeatable).")
@click.option("--rate", default=None, help="The rate point to encode at [default: the middle of the codec's].")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Measure on this image (resized and centre-cropped to each size) instead of a synthetic one.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=None, help="torch CPU threads [default: torch's choice].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report (timings, fits, environment) as JSON here.")
@click.option("--compare", "compare_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A saved report to compare with; exit 1 if any median is slower than --max-slowdown.")
@click.option("--max-slowdown", type=float, default=1.10, show_default=True,
              help="Largest allowed new/old median ratio with --compare.")
@click.option("--allow-mismatch", is_flag=True,
              help="Compare even when device, sizes, dtype, threads or codec differ.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save a figure of time against steps (.pdf, .png, .svg).")
@click.option("--quiet", "-q", is_flag=True, help="No line per timed round.")
def command(codec, steps, sizes, repeats, warmup, options, rate, image, device, threads, out, compare_path,
            max_slowdown, allow_mismatch, plot, quiet) -> None:
    """Time encoding and decoding against the number of denoising steps, with a fit time = a + b·steps.

    Without a checkpoint, CDC runs with the released architecture and random weights (-o cdc.weights=random):
    its times are representative, its images are not. Exit status: 0 ok, 1 slower than --max-slowdown against
    --compare, 2 could not measure or compare.
    """
    from ..speed import (SpeedConfig, SpeedError, SpeedReportError, compare_reports, load_report,
                         parse_sizes, parse_steps, run_speed, save_report, soft_differences)

    console = Console(width=170, emoji=False)
    try:
        size_list = parse_sizes(sizes)
        step_list = parse_steps(steps) if steps else None
        codec_opts, rate_opt = _codec_options(codec, options)
    except (ValueError, CodecError) as err:
        raise click.UsageError(str(err)) from None
    if max_slowdown <= 0:
        raise click.UsageError(f"--max-slowdown must be positive, got {max_slowdown}")
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise click.UsageError(f"--plot {plot}: use a .pdf, .png or .svg file name")
    if image is not None and not image.is_file():
        raise click.UsageError(f"--image {image}: no such file")
    old = None
    if compare_path is not None:
        try:
            old = load_report(compare_path)
        except SpeedReportError as err:
            raise SpeedFailure(str(err)) from None
        # Refuse before spending minutes measuring when what is already known does not match.
        planned = {"codec": codec, "env": {"device": device}, "settings": {"sizes": [f"{w}x{h}" for w, h in size_list]},
                   "rows": []}
        if threads is not None:
            planned["env"]["threads"] = threads
        _check_mismatch(old, planned, compare_path, allow_mismatch, console)

    config = SpeedConfig(codec=codec, options=codec_opts, steps=step_list, sizes=size_list, repeats=repeats,
                         warmup=warmup, device=device, threads=threads, rate=rate or rate_opt, image=image)

    def progress(row: dict[str, Any]) -> None:
        label = f"steps={row['steps']}" if row["steps"] is not None else "one point"
        console.print(f"  {row['width']}x{row['height']} {label}: decode {_fmt_s(row['decode']['median'])}, "
                      f"encode {_fmt_s(row['encode']['median'])}", highlight=False)

    def log(line: str) -> None:
        if not quiet:
            console.print(f"[dim]  {escape(line)}[/dim]", highlight=False)

    console.print(escape(f"measuring {codec} on {device} ..."), highlight=False)
    try:
        report = run_speed(config, progress=progress, log=log)
    except UnknownNameError as err:
        raise click.UsageError(str(err)) from None
    except (SpeedError, CodecError) as err:
        raise SpeedFailure(str(err)) from None

    for note in report["notes"]:
        console.print(f"[yellow]note[/yellow]: {escape(note)}", highlight=False)
    env = report["env"]
    console.print(escape(f"device {env['device']} ({env['device_name']}), dtype {env['dtype']}, {env['threads']} "
                         f"threads, torch {env['torch']}, commit {(env['git_commit'] or 'unknown')[:10]}"
                         f"{' (dirty)' if env['git_dirty'] else ''}, load {env['load_before']} -> {env['load_after']}"),
                  highlight=False)
    console.print(_rows_table(report))
    if report["fits"]:
        console.print(_fits_table(report))
    if out is not None:
        console.print(escape(f"report written to {save_report(report, out)}"), highlight=False)
    if plot is not None:
        figure = _plot(report, plot)
        if figure is None:
            console.print("[yellow]note[/yellow]: " + escape(f"no figure written to {plot}: {codec} has no steps "
                                                             "option, so there is no time-against-steps curve"),
                          highlight=False)
        else:
            console.print(escape(f"figure written to {figure}"), highlight=False)
    if old is None:
        return
    _check_mismatch(old, report, compare_path, allow_mismatch, console)
    for note in soft_differences(old, report):
        console.print("[yellow]note[/yellow]: " + escape(f"differs from {compare_path}: {note}"), highlight=False)
    comparison = compare_reports(old, report, max_slowdown)
    if not comparison.rows:
        raise SpeedFailure(f"no (size, steps) point measured in both runs; {compare_path} has "
                           f"{sorted(map(str, comparison.only_old))}")
    console.print(_compare_table(comparison, compare_path))
    if comparison.only_new or comparison.only_old:
        console.print("[yellow]note[/yellow]: " + escape(f"not in both runs: only new {comparison.only_new}, "
                                                         f"only old {comparison.only_old}"), highlight=False)
    if comparison.regressed:
        worst = comparison.worst
        console.print(f"[red]regression[/red]: {worst.phase} at {worst.width}x{worst.height}, steps={worst.steps} "
                      f"is {worst.ratio:.3f}x the saved median (limit {max_slowdown:g})", highlight=False)
        raise SystemExit(EXIT_REGRESSION)
    console.print(f"[green]no regression[/green]: every median ratio <= {max_slowdown:g}", highlight=False)


def _check_mismatch(old: dict[str, Any], new: dict[str, Any], old_path: Path, allow: bool, console: Console) -> None:
    from ..speed import mismatches

    found = mismatches(old, new)
    if not found:
        return
    what = "; ".join(found)
    if allow:
        console.print("[yellow]warning[/yellow]: "
                      + escape(f"comparing runs that differ ({what}) because of --allow-mismatch"),
                      highlight=False)
        return
    raise SpeedFailure(f"refusing to compare with {old_path}: the runs differ ({what}). Measure under the same "
                       "conditions, or pass --allow-mismatch to compare anyway.")


def _plot(report: dict[str, Any], path: Path) -> Path | None:
    """The speed figure (``cdc_bench.plots.speed``); ``None`` when no row has a step count to plot against."""
    if not any(r.get("steps") is not None for r in report["rows"]):
        return None
    from ..plots.speed import plot_speed

    return Path(plot_speed([report], path.with_suffix(""), formats=(path.suffix.lower().lstrip("."),))[0])
