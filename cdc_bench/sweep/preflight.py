"""Pre-flight: check everything a run needs before any work, and the command-line values it is given.

``cdc-bench run`` calls :func:`check_run` once its codecs and metrics are parsed. For every codec and metric it
checks the Python dependencies and binaries (the codec's own ``availability()``), the weight files (present and
matching their sha256) and prints ONE table of what is missing and how to fix each, each file named once, then
stops with exit status 2: an hour-long sweep never fails item by item for a reason known at the start. With
``--skip-unavailable`` the codecs and metrics at fault are dropped with a warning instead (and recorded in the
run's manifest). ``cdc-bench codecs`` shows the same states (:func:`codec_state`).

The parsers here (``parse_timeout``, ``parse_workers``, ``parse_device``, ...) check the values of a run before it
starts; :mod:`cdc_bench.commands._params` wraps them as click types for the command line.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..errors import CodecError, ConfigError, UnknownNameError, WeightsMissing

WORKERS_PER_CORE = 4
READY, WEIGHTS_MISSING, DEPENDENCY_MISSING, BROKEN = "ready", "weights missing", "dependency missing", "error"


# -- what is missing ------------------------------------------------------------------------------------------
@dataclass
class Problem:
    """One thing a run lacks: who needs it, what it is, and how to get it."""

    users: list[str]          # codecs/metrics that need it ("codec hific", "metric lpips")
    kind: str                 # "dependency", "weight file", "sha256 mismatch", "error"
    what: str
    fix: str = ""
    files: list[str] = field(default_factory=list)  # weight file names, for grouping


class PreflightFailed(ConfigError):
    """Something a run needs is missing; the message is the table of problems (exit status 2)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("a pre-flight check failed; nothing was run:\n" + render_text(problems)
                         + "\nFix these, or rerun with --skip-unavailable to leave those codecs and metrics out.")


def missing_packages(packages: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(module, fix) for module, fix in packages if importlib.util.find_spec(module) is None]


def weight_problems(names: Sequence[str], user: str, download: bool = False) -> list[Problem]:
    """One problem per missing or mismatching weight file (``download``: fetch the missing ones first)."""
    from ..weights import WeightChecksumMismatch, get_weight

    problems = []
    for name in dict.fromkeys(names):
        try:
            weight = get_weight(name)
        except UnknownNameError as err:
            problems.append(Problem([user], "error", f"{user} needs an undeclared weight file: {err}"))
            continue
        try:
            found = weight.resolve()
            if found is None and download:
                weight.ensure(allow_download=True)
                continue
        except WeightChecksumMismatch as err:
            problems.append(Problem([user], "sha256 mismatch", str(err), files=[name]))
            continue
        except WeightsMissing as err:
            problems.append(Problem([user], "download failed", str(err), files=[name]))
            continue
        if found is None:
            problems.append(Problem([user], "weight file", name, files=[name]))
    return problems


def codec_problems(name: str, options: dict | None = None, rate_points: Sequence[Any] | None = None,
                   device: str = "cpu", download: bool = False) -> list[Problem]:
    """Dependencies/binaries (the codec's availability) and weight files of one codec configuration."""
    from ..codecs.registry import create_codec, get_codec_class

    user = f"codec {name}"
    problems = []
    try:
        cls = get_codec_class(name)
        status = cls.availability()
    except UnknownNameError:
        raise
    except Exception as err:  # noqa: BLE001 - a plug-in that cannot even load is one problem, not a traceback
        return [Problem([user], "error", f"cannot load: {type(err).__name__}: {err}",
                        "install the package that provides it (see `cdc-bench codecs`)")]
    if not status.ok:
        problems.append(Problem([user], "dependency", status.reason, status.fix))
    try:
        codec = create_codec(name, options, device=device)
        names = codec.required_weights(list(rate_points) if rate_points is not None else list(codec.rate_points))
    except CodecError as err:
        problems.append(Problem([user], "error", str(err)))
        return problems
    except Exception as err:  # noqa: BLE001
        problems.append(Problem([user], "error", f"cannot list its weight files: {type(err).__name__}: {err}"))
        return problems
    return problems + weight_problems(names, user, download and status.ok)


def metric_problems(name: str, download: bool = False) -> list[Problem]:
    from ..metrics import get_metric

    user = f"metric {name}"
    info = get_metric(name)
    problems = [Problem([user], "dependency", f"Python package {module} is not installed", fix)
                for module, fix in missing_packages(info.packages)]
    absent = info.check() if info.check is not None else None
    if absent is not None:
        problems.append(Problem([user], "dependency", *absent))
    return problems + weight_problems(info.weights, user, download and not problems)


def merge(problems: list[Problem]) -> list[Problem]:
    """Each weight file once (its users joined); the files of the same users in one row."""
    by_file: dict[tuple[str, str], Problem] = {}
    others: list[Problem] = []
    for problem in problems:
        if not problem.files:
            others.append(problem)
            continue
        key = (problem.kind, problem.files[0])
        if key in by_file:
            by_file[key].users = list(dict.fromkeys(by_file[key].users + problem.users))
        else:
            by_file[key] = Problem(list(problem.users), problem.kind, problem.what, problem.fix, [problem.files[0]])
            if problem.kind != "weight file":
                others.append(by_file[key])
    by_file = {file: p for (kind, file), p in by_file.items() if kind == "weight file"}
    grouped: dict[tuple[str, ...], list[str]] = {}
    for file, problem in by_file.items():
        grouped.setdefault(tuple(problem.users), []).append(file)
    rows = []
    for users, files in grouped.items():
        targets = ",".join(u.split(" ", 1)[1] for u in users)
        what = f"{len(files)} missing: " + ", ".join(files)
        fix = (f"cdc-bench weights --download --only {targets} (or rerun with --download); offline: "
               f"`cdc-bench weights --only {targets}` shows each URL and where to put it")
        fix += _offline_ways(users, files)
        rows.append(Problem(list(users), "weight files", what, fix, files))
    return others + rows


def _offline_ways(users: Sequence[str], files: Sequence[str]) -> str:
    """The ways on without a download, as the download error names them: the folder to put the files in by hand,
    and ``-o CODEC.weights=random`` for a codec that can run a dry run on random weights."""
    from ..weights import get_weight

    folders = sorted({str(get_weight(name).path.parent) for name in files})
    text = f"; by hand: put the file(s) in {', '.join(folders)}" if folders else ""
    random = [user.split(" ", 1)[1] for user in users if user.startswith("codec ") and _has_random_weights(user[6:])]
    if random:
        text += ("; dry run without them: " + " ".join(f"-o {codec}.weights=random" for codec in random)
                 + " (random weights of the released architecture, for speed work only)")
    return text


def _has_random_weights(codec: str) -> bool:
    from ..codecs.registry import get_codec_class

    try:
        spec = get_codec_class(codec).option_specs.get("weights")
    except Exception:  # a codec that cannot even be imported has its own problem row
        return False
    return spec is not None and "random" in (getattr(spec, "choices", None) or ())


def render_text(problems: list[Problem]) -> str:
    """The table as text (rich), wide enough for the paths and fixes."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_lines=True)
    for col in ("needed by", "missing", "how to fix"):
        table.add_column(col, overflow="fold")
    for problem in problems:
        table.add_row(escape(", ".join(problem.users)), escape(f"{problem.kind}: {problem.what}"),
                      escape(problem.fix))
    console = Console(width=160, record=True, emoji=False, highlight=False, force_terminal=False,
                      file=open(os.devnull, "w"))
    console.print(table)
    return console.export_text()


@dataclass
class Preflight:
    """What :func:`check_run` decided: the plans and metrics to run, and what was left out and why."""

    plans: list
    metrics: list
    skipped: list[dict[str, str]] = field(default_factory=list)


def check_run(plans: list, metric_infos: list, device: str = "cpu", download: bool = False,
              skip_unavailable: bool = False, warn=None) -> Preflight:
    """Check every codec plan and metric; raise :class:`PreflightFailed` (exit 2) or, with ``skip_unavailable``,
    drop those at fault (``warn`` is told each, once)."""
    problems: list[Problem] = []
    for plan in plans:
        problems += codec_problems(plan.name, plan.options, plan.rate_points, device, download)
    for info in metric_infos:
        problems += metric_problems(info.name, download)
    problems = merge(problems)
    if not problems:
        return Preflight(list(plans), list(metric_infos))
    if not skip_unavailable:
        raise PreflightFailed(problems)
    at_fault = {user for p in problems for user in p.users}
    kept_plans = [p for p in plans if f"codec {p.name}" not in at_fault]
    kept_metrics = [m for m in metric_infos if f"metric {m.name}" not in at_fault]
    skipped = [{"name": user, "reason": "; ".join(f"{p.kind}: {p.what}" for p in problems if user in p.users)}
               for user in sorted(at_fault)]
    if warn is not None:
        warn("--skip-unavailable: left out " + ", ".join(s["name"] for s in skipped) + ":\n" + render_text(problems))
    if not kept_plans:
        raise PreflightFailed(problems)
    return Preflight(kept_plans, kept_metrics, skipped)


def codec_state(name: str) -> tuple[str, str, str]:
    """``(state, reason, fix)`` of a codec at its default options, state one of ready / weights missing /
    dependency missing / error, as ``cdc-bench codecs`` shows it."""
    problems = codec_problems(name)
    if not problems:
        return READY, "", ""
    first = next((p for p in problems if p.kind == "dependency"), None)
    if first is not None:
        return DEPENDENCY_MISSING, first.what, first.fix
    errors = [p for p in problems if p.kind == "error"]
    if errors:
        return BROKEN, errors[0].what, errors[0].fix
    rows = merge(problems)
    files = [f for p in rows for f in p.files]
    return (WEIGHTS_MISSING, f"{len(files)} weight file{'s' if len(files) > 1 else ''} missing or failing sha256: "
            + ", ".join(files), f"cdc-bench weights --download --only {name}")


# -- command-line values ---------------------------------------------------------------------------------------
#: the longest per-item timeout: larger values overflow the event loops' clocks (Dask: OverflowError)
MAX_TIMEOUT_S = 30 * 24 * 3600.0


def parse_timeout(value: Any) -> float | None:
    """Seconds > 0, or ``none``/``off`` for no per-item timeout; 0, negative, NaN and infinity are refused."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("none", "off", "no"):
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT_S:
        raise ConfigError(f"{value!r}: give a number of seconds > 0 and at most {MAX_TIMEOUT_S:g} (30 days; e.g. "
                          "1800), or 'none' for no per-item timeout")
    return seconds


def max_workers() -> int:
    return WORKERS_PER_CORE * (os.cpu_count() or 1)


def parse_workers(value: Any) -> int:
    """0 (in this process) up to :func:`max_workers` worker processes."""
    try:
        workers = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{value!r}: give a whole number of worker processes (0 runs in this process)") \
            from None
    limit = max_workers()
    if not 0 <= workers <= limit:
        raise ConfigError(f"{value!r}: give 0 (run in this process) up to {limit} "
                          f"({WORKERS_PER_CORE} x the {os.cpu_count() or 1} CPU cores here)")
    return workers


def parse_device(value: str) -> str:
    """``auto`` (cuda when present, else cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, each only when present."""
    import torch

    text = str(value).strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    valid = "cpu, cuda, cuda:N, mps or auto"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{value!r}: not a device; use {valid}") from None
    if device.type == "cpu":
        return "cpu"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{value!r}: CUDA is not available on this machine (torch "
                              f"{torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); use cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{value!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return text
    if device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{value!r}: Apple's MPS is not available here; use cpu or auto")
        return text
    raise ConfigError(f"{value!r}: cdc-bench runs on {valid}")


def parse_fid_protocol(value: str) -> str:
    from ..metrics.fid import PROTOCOLS

    text = str(value).strip()
    if text not in PROTOCOLS:
        raise UnknownNameError("FID protocol", text, list(PROTOCOLS))
    return text


#: ``--target-bpp jpeg-ai``: JPEG AI's target-rate grid (its common test conditions' six bpp points).
TARGET_PRESETS: dict[str, tuple[float, ...]] = {"jpeg-ai": (0.03, 0.06, 0.12, 0.25, 0.5, 0.75)}


def parse_targets(value: Any) -> tuple[float, ...]:
    """``0.1,0.2,0.4``: target bits per pixel for matched-bitrate rows, each a finite number > 0, no repeats;
    or a preset name (``jpeg-ai``)."""
    if value is None or value == ():
        return ()
    if isinstance(value, (tuple, list)):   # from Python: each item checked as the text's are
        value = ",".join(map(str, value))
    if str(value).strip().lower() in TARGET_PRESETS:
        return TARGET_PRESETS[str(value).strip().lower()]
    targets: list[float] = []
    for part in str(value).split(","):
        try:
            target = float(part)
        except ValueError:
            target = math.nan
        if not math.isfinite(target) or target <= 0:
            raise ConfigError(f"{part.strip()!r}: give target bits per pixel as numbers > 0, e.g. 0.1,0.2,0.4, "
                              f"or a preset: {', '.join(TARGET_PRESETS)}")
        if target not in targets:
            targets.append(target)
    return tuple(targets)
