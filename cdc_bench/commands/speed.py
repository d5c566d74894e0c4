"""``cdc-bench speed``: encode and decode time and memory against denoising steps; a regression gate against a
saved run.

Exit status: 0 measured (and no regression); 1 regression: for some (phase, size) the bootstrap interval of the
median ratio new / baseline lies wholly above ``--max-slowdown``; 2 the benchmark or the comparison could not be
done (bad arguments, unavailable codec, incomparable runs); 3 ``--strict`` and the machine was busy (load average
above the number of cores) before or during the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import _params
from ..codecs.base import CodecError
from ..errors import UnknownNameError

EXIT_REGRESSION = 1
EXIT_ERROR = 2
EXIT_BUSY = 3
PLOT_SUFFIXES = (".pdf", ".png", ".svg")


class SpeedFailure(click.ClickException):
    """Could not measure or compare: exit 2, so CI can tell it apart from a regression (exit 1)."""

    exit_code = EXIT_ERROR


class MachineBusyFailure(click.ClickException):
    """``--strict`` and the load average exceeded the cores: exit 3, so CI can retry later."""

    exit_code = EXIT_BUSY


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if abs(seconds) < 1 else f"{seconds:.3f} s"


def _spread(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "–"
    return escape(f"{_fmt_s(summary['median'])} [{_fmt_s(summary['q1'])}–{_fmt_s(summary['q3'])}]")


def _rows_table(report: dict[str, Any]) -> Table:
    clock = report.get("gate_clock", "cpu")
    table = Table(title=escape(f"{report['codec']}: decode time per image (median [q1–q3], "
                               f"{report['settings']['repeats']} rounds after {report['settings']['warmup']} warm-up)"))
    for col in ("size", "steps", "decode (wall)", f"decode ({clock})", "wall÷steps", "bytes", "bpp",
                "peak RSS (MiB)", "CUDA (MiB)"):
        table.add_column(col, justify="right")
    for r in report["rows"]:
        dec, mem = r["decode"], r["memory"]
        per_step = _fmt_s(dec["median"] / r["steps"]) if r["steps"] else "–"
        cuda = mem.get("decode_cuda_max_allocated_mib")
        table.add_row(f"{r['width']}x{r['height']}", str(r["steps"] if r["steps"] is not None else "–"),
                      _spread(dec), _spread(r.get(f"decode_{clock}")), per_step, str(r["bytes"]), f"{r['bpp']:.4f}",
                      f"{mem['decode_peak_rss_mib']:.0f}", f"{cuda:.0f}" if cuda is not None else "–")
    return table


def _encode_table(report: dict[str, Any]) -> Table:
    clock = report.get("gate_clock", "cpu")
    table = Table(title="encode time per image (once per size: the bitstream does not depend on steps)")
    for col in ("size", "encode (wall)", f"encode ({clock})", "bytes", "peak RSS (MiB)"):
        table.add_column(col, justify="right")
    for r in report["encode"]:
        table.add_row(f"{r['width']}x{r['height']}", _spread(r["encode"]), _spread(r.get(f"encode_{clock}")),
                      str(r["bytes"]), f"{r['memory']['encode_peak_rss_mib']:.0f}")
    return table


def _fits_table(report: dict[str, Any]) -> Table:
    table = Table(title="least-squares fit: decode time = a + b·steps")
    for col in ("size", "clock", "a (fixed)", "b (per step)", "R²", "max rel. residual", "verdict"):
        table.add_column(col, justify="right")
    for f in report["fits"]:
        b_se = f" ± {_fmt_s(f['b_stderr'])}" if f.get("b_stderr") is not None else ""
        verdict = escape(f["note"]) if f["linear"] is not False else f"[red]{escape(f['note'])}[/red]"
        table.add_row(f"{f['width']}x{f['height']}", f.get("clock", "wall"), _fmt_s(f["a"]), _fmt_s(f["b"]) + b_se,
                      f"{f['r2']:.4f}", f"{f['max_rel_residual']:.1%}", verdict)
    return table


def _compare_table(comparison: Any, old_path: Path) -> Table:
    level = comparison.rows[0].interval.confidence if comparison.rows else 0.95
    title = (f"gate against {old_path}: median ratio new / baseline on {comparison.clock} time, pooled over the "
             f"rounds and step counts, with its {level:.0%} bootstrap interval; fails when the interval's lower "
             f"bound > {comparison.max_slowdown:g}")
    table = Table(title=escape(title))
    for col in ("phase", "size", "steps", "rounds (base/new)", "ratio", f"{level:.0%} interval", "wall ratio", ""):
        table.add_column(col, justify="right")
    for r in comparison.rows:
        iv = r.interval
        mark = "[red]SLOWER[/red]" if r.regressed else "ok"
        steps = ",".join(str(s) for s in r.steps if s is not None) or "–"
        table.add_row(r.phase, f"{r.width}x{r.height}", steps, f"{iv.n_old}/{iv.n_new}", f"{iv.ratio:.3f}",
                      f"[{iv.low:.3f}, {iv.high:.3f}]", f"{r.wall_ratio:.3f}", mark)
    return table


def _codec_options(codec: str, option_args: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    from ..codecs.plans import RATE_OPTION, check_option_targets, options_for, parse_option_args

    parsed = parse_option_args(option_args)
    check_option_targets(parsed, [codec])
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
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed rounds; each encodes once and decodes at every step count (3+ for the gate's interval).")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed encode+decode rounds first.")
@click.option("--option", "-o", "options", multiple=True, metavar="CODEC.KEY=VALUE",
              help="A codec option, e.g. -o cdc.weights=random (repeatable).")
@click.option("--rate", default=None, help="The rate point to encode at [default: the middle of the codec's].")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Measure on this image (resized and centre-cropped to each size) instead of a synthetic one.")
@click.option("--device", type=_params.DEVICE, default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=None, help="torch CPU threads [default: torch's choice].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report (timings, fits, environment) as JSON here.")
@click.option("--compare", "compare_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A saved report (the baseline) to compare with; exit 1 when the bootstrap interval of a median "
                   "ratio new/baseline lies wholly above --max-slowdown.")
@click.option("--max-slowdown", type=float, default=1.10, show_default=True,
              help="With --compare: fail when the interval's lower bound exceeds this ratio.")
@click.option("--strict", is_flag=True,
              help="Refuse (exit 3) when the load average exceeds the number of cores before or during the run.")
@click.option("--allow-mismatch", is_flag=True,
              help="Compare even when device, sizes, dtype, threads or codec differ.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save a figure of time against steps (.pdf, .png, .svg).")
@click.option("--quiet", "-q", is_flag=True, help="No line per timed round.")
def command(codec, steps, sizes, repeats, warmup, options, rate, image, device, threads, out, compare_path,
            max_slowdown, strict, allow_mismatch, plot, quiet) -> None:
    """Time encoding (once per size) and decoding against the number of denoising steps, with a fit
    decode time = a + b·steps, on wall and CPU time (CUDA-event time on a GPU).

    Without a checkpoint, CDC runs with the released architecture and random weights (-o cdc.weights=random):
    its times are representative, its images are not. Exit status: 0 ok, 1 regression against --compare (an
    interval wholly above --max-slowdown), 2 could not measure or compare, 3 --strict and the machine was busy.
    """
    from ..speed import (MachineBusy, SpeedConfig, SpeedError, SpeedReportError, compare_reports, load_report,
                         parse_sizes, parse_steps, run_speed, save_report, soft_differences)
    from ..speed.slowdown import SlowdownHookError

    console = Console(width=170, emoji=False)
    try:
        size_list = parse_sizes(sizes)
        step_list = parse_steps(steps) if steps else None
        codec_opts, rate_opt = _codec_options(codec, options)
    except (ValueError, CodecError) as err:
        raise click.UsageError(str(err)) from None
    if not (0 < max_slowdown < float("inf")):   # nan too
        raise click.UsageError(f"--max-slowdown must be a positive finite number, got {max_slowdown}")
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
        console.print(f"  {row['width']}x{row['height']} {label}: decode {_fmt_s(row['decode']['median'])}",
                      highlight=False)

    def log(line: str) -> None:
        if not quiet:
            console.print(f"[dim]  {escape(line)}[/dim]", highlight=False)

    console.print(escape(f"measuring {codec} on {device} ..."), highlight=False)
    try:
        report = run_speed(config, progress=progress, log=log, strict=strict)
    except UnknownNameError as err:
        raise click.UsageError(str(err)) from None
    except MachineBusy as err:
        raise MachineBusyFailure(str(err)) from None
    except (SpeedError, CodecError, SlowdownHookError) as err:
        raise SpeedFailure(str(err)) from None

    for note in report["notes"]:
        console.print(f"[yellow]note[/yellow]: {escape(note)}", highlight=False)
    env = report["env"]
    console.print(escape(f"device {env['device']} ({env['device_name']}), dtype {env['dtype']}, {env['threads']} "
                         f"threads, torch {env['torch']}, commit {((env.get('git') or {}).get('commit') or 'unknown')[:10]}"
                         f"{' (dirty)' if (env.get('git') or {}).get('dirty') else ''}, load {env['load_before']} -> {env['load_after']}"),
                  highlight=False)
    if report["load"]["busy"]:
        console.print("[yellow]warning[/yellow]: " + escape(
            f"load average {report['load']['peak_1min']:.2f} exceeded the {report['load']['cores']} cores during "
            f"the run: wall times are inflated; the gate decides on {report['gate_clock']} time"), highlight=False)
    console.print(_encode_table(report))
    console.print(_rows_table(report))
    if report["fits"]:
        console.print(_fits_table(report))
    if out is not None and old is None:
        console.print(escape(f"report written to {save_report(report, out)}"), highlight=False)
    if plot is not None:
        figure = _plot(report, plot)
        if figure is None:
            console.print("[yellow]note[/yellow]: " + escape(f"no figure written to {plot}: {codec} has no steps "
                                                             "option, so there is no time-against-steps curve"),
                          highlight=False)
        else:
            from ..plots.captions import read_caption

            console.print(escape(f"figure written to {figure}"), highlight=False)
            console.print(escape(f"caption: {read_caption(figure)}"), highlight=False)
    if old is None:
        return
    _check_mismatch(old, report, compare_path, allow_mismatch, console)
    for note in soft_differences(old, report):
        console.print("[yellow]note[/yellow]: " + escape(f"differs from {compare_path}: {note}"), highlight=False)
    comparison = compare_reports(old, report, max_slowdown)
    if not any(r.phase == "decode" for r in comparison.rows):
        raise SpeedFailure(f"no (size, steps) point measured in both runs; {compare_path} has "
                           f"{sorted(map(str, comparison.only_old))}")
    report["comparison"] = {"baseline": str(compare_path), **comparison.as_dict()}
    if out is not None:
        console.print(escape(f"report (with the comparison) written to {save_report(report, out)}"),
                      highlight=False)
    console.print(_compare_table(comparison, compare_path))
    if comparison.only_new or comparison.only_old:
        console.print("[yellow]note[/yellow]: " + escape(f"not in both runs: only new {comparison.only_new}, "
                                                         f"only old {comparison.only_old}"), highlight=False)
    if strict and report["load"]["busy"]:
        raise MachineBusyFailure(f"no verdict (--strict): {report['load']['peak_1min']:.2f} load average on "
                                 f"{report['load']['cores']} cores during the run")
    worst = comparison.worst
    iv = worst.interval
    where = f"{worst.phase} at {worst.width}x{worst.height}" + (
        f" (steps {','.join(map(str, worst.steps))})" if worst.phase == "decode" else "")
    if comparison.regressed:
        console.print("[red]regression[/red]: " + escape(
            f"{where} is {iv.ratio:.3f}x the baseline on {comparison.clock} time, {iv.confidence:.0%} interval "
            f"[{iv.low:.3f}, {iv.high:.3f}] lies above the limit {max_slowdown:g}"), highlight=False)
        raise SystemExit(EXIT_REGRESSION)
    console.print("[green]no regression[/green]: " + escape(
        f"every interval's lower bound <= {max_slowdown:g} (highest: {where}, ratio {iv.ratio:.3f}, "
        f"interval [{iv.low:.3f}, {iv.high:.3f}], {comparison.clock} time)"), highlight=False)


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
