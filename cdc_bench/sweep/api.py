"""One call that runs a benchmark: the library API the ``cdc-bench run`` command is a thin shell over.

:func:`run` validates everything first (codecs, options, rate points, metrics, datasets, device, weights: the
pre-flight check), plans the tasks, runs what the results folder does not hold yet on the chosen executor, computes
the dataset-level metrics and records the run's manifest. Rows measured through it are keyed exactly as the
command line keys them (every codec option with its default filled in), so Python, the CLI and the benchmarks
share one store. ``cdc_bench.run`` wraps it and returns the results ready to analyse.
"""

from __future__ import annotations

import signal

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..codecs.plans import CodecPlan, build_plans, split_list
from ..errors import CdcBenchError, ConfigError, DatasetError, StoreError
from ..provenance import SWEEP_SAMPLE_S, LoadMonitor, build_manifest, new_run_id, timestamp
from .interrupts import RunStopped, SweepInterrupted, signal_of, sigterm_raises
from ..store.key import file_stem
from ..store.results import ResultsStore
from . import preflight
from .client import SweepSummary, plan_tasks, sweep
from .worker import DEFAULT_METRICS, Task

DEFAULT_CODECS = ("jpeg", "webp", "hevc")


@dataclass
class RunOutcome:
    """What :func:`run` did: where the results are, what was planned and measured, and the run's manifest."""

    out: Path
    summary: SweepSummary
    manifest: dict[str, Any]
    plans: list[CodecPlan]
    tasks: list[Task]
    failures: list[dict[str, Any]] = field(default_factory=list)
    dataset_rows: list[dict[str, Any]] = field(default_factory=list)


def default_out(datasets: Sequence[str]) -> Path:
    """``results/<datasets>``: the same call resumes into the same folder."""
    return Path("results") / "+".join(file_stem(d.rstrip("/").rpartition("/")[2] or d) for d in datasets)


def option_args(options: Mapping[str, Mapping[str, Any]] | Iterable[str] | None) -> list[str]:
    """Codec options as the command line gives them (``jpeg.subsampling=444``), from a mapping
    ``{"jpeg": {"subsampling": 444}}`` or a list of such strings."""
    if not options:
        return []
    if isinstance(options, str):
        options = [options]
    if not isinstance(options, (Mapping, list, tuple)):
        raise ConfigError(f"options={options!r}: give a mapping {{'jpeg': {{'subsampling': 444}}}} or a list of "
                          "'CODEC.KEY=VALUE' strings")
    if isinstance(options, Mapping):
        args = []
        for codec, values in options.items():
            if not isinstance(values, Mapping):
                raise ConfigError(f"options[{codec!r}]: give a mapping of option names to values, "
                                  f"e.g. {{'{codec}': {{'qualities': '10,50'}}}}")
            for key, value in values.items():
                text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
                args.append(f"{codec}.{key}={text}")
        return args
    if not all(isinstance(o, str) for o in options):
        raise ConfigError(f"options={options!r}: each item is a 'CODEC.KEY=VALUE' string, e.g. 'jpeg.subsampling=444'")
    return list(options)


def _names(value: str | Iterable[str], what: str) -> list[str]:
    """``"a,b"`` or ``["a", "b"]``; anything else (None, a number, a list holding a non-string) is refused by name,
    not a TypeError from deep inside."""
    if isinstance(value, str):
        return split_list(value)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what}={value!r}: give a comma-separated string or a list of names, e.g. ['psnr', "
                          "'ms-ssim']" if what == "metrics" else
                          f"{what}={value!r}: give a comma-separated string or a list of names")
    return split_list(value)


def _whole(value: Any, what: str, low: int) -> int:
    """An int >= ``low`` (``bool`` is not one): batch=0 or limit=-1 must not silently mean something else."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{what}={value!r}: give a whole number >= {low}")
    return value


def _out_folder(out: Any) -> Path | None:
    if out is None or out == "":
        return None
    if not isinstance(out, (str, Path)):
        raise ConfigError(f"out={out!r}: give the results folder as a str or pathlib.Path")
    return Path(out)


def _rates(qualities: str | Iterable[Any] | None) -> str | None:
    if qualities is None or isinstance(qualities, str):
        return qualities
    return ",".join(map(str, qualities))


def run(datasets: str | Iterable[str] = ("default",), codecs: str | Iterable[str] = DEFAULT_CODECS, *,
        qualities: str | Iterable[Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
        metrics: str | Iterable[str] = DEFAULT_METRICS, out: str | Path | None = None,
        data_root: str | Path | None = None, download: bool = False, preprocess: str = "none", workers: int = 1,
        limit: int | None = None, device: str = "cpu", timeout: float | str | None = 1800.0,
        save_recon: bool = False, retry_errors: bool = False, fid_protocol: str = "fid256",
        skip_unavailable: bool = False, executor: str | Any = "local", scheduler: str | None = None,
        shared_fs: bool = False, batch: int = 1, target_bpp: str | Iterable[float] = (), match: str = "below",
        progress: bool = False, warn: Callable[[str], None] | None = None,
        on_row: Callable[[dict[str, Any]], None] | None = None,
        on_executor: Callable[[Any], None] | None = None, save_bitstreams: bool = False) -> RunOutcome:
    """Encode, decode and measure every image of ``datasets`` at every rate point of every codec.

    ``options`` maps a codec to its options (``{"jpeg": {"subsampling": "444", "qualities": "10,50"}}``) or is a
    list of ``CODEC.KEY=VALUE`` strings as ``-o`` takes them. Every value is checked before any work, and a
    :class:`~cdc_bench.errors.ConfigError` (or :class:`~cdc_bench.sweep.preflight.PreflightFailed`) names what is
    wrong. Results are stored in ``out`` as they are measured; calling again with the same arguments resumes.
    ``executor`` is ``"local"`` (a process pool of ``workers``; 0 runs in this process), ``"dask"``, or an
    executor object. ``save_bitstreams`` keeps each item's encoded bytes beside its reconstruction
    (:meth:`~cdc_bench.store.key.ResultKey.bitstream_path`).
    """
    from ..datasets import get_dataset
    from ..codecs.learned import memory_check_enabled
    from ..datasets.images import Preprocess, pixel_limit
    from ..metrics import get_metric

    from ..metrics import expand_metric_presets

    dataset_names, codec_names = _names(datasets, "datasets"), _names(codecs, "codecs")
    metric_names = expand_metric_presets(_names(metrics, "metrics"))  # presets: jpeg-ai
    out = _out_folder(out)
    if limit is not None:
        limit = _whole(limit, "limit", 1)
    if isinstance(target_bpp, (int, float)) and not isinstance(target_bpp, bool):
        target_bpp = (float(target_bpp),)
    workers = preflight.parse_workers(workers)
    timeout = preflight.parse_timeout(timeout)
    device = preflight.parse_device(device)
    fid_protocol = preflight.parse_fid_protocol(fid_protocol)
    targets = preflight.parse_targets(target_bpp if isinstance(target_bpp, str) else tuple(target_bpp) or None)
    if match not in ("below", "nearest"):
        raise ConfigError(f"match={match!r}: choose below or nearest")
    batch = _whole(batch, "batch", 1)
    plans = build_plans(codec_names, option_args(options), _rates(qualities))
    metric_infos = [get_metric(m) for m in metric_names]
    pre = Preprocess.parse(preprocess)
    pixel_limit()  # a bad $CDC_BENCH_MAX_PIXELS fails now, not in every item
    memory_check_enabled()   # and a bad $CDC_BENCH_MEMORY_CHECK
    checked = preflight.check_run(plans, metric_infos, device, download, skip_unavailable, warn=warn)
    plans, metric_infos = checked.plans, checked.metrics
    metric_names = [m.name for m in metric_infos]

    # Resolve datasets before any work, so a missing file fails now, not after an hour.
    dataset_images, folders = [], []
    for name in dataset_names:
        dataset = get_dataset(name, data_root, download=download)
        folders.append((name, getattr(dataset, "where", None)))
        if dataset.name in {d for d, _ in dataset_images}:  # the same dataset under two spellings: run once
            if warn is not None:
                warn(f"dataset {dataset.name} is given more than once; it is run once")
            continue
        items = dataset.images()[:limit] if limit else dataset.images()
        dataset_images.append((dataset.name, [(item.name, item.path) for item in items]))
    if not dataset_images:
        raise DatasetError("no dataset given; name at least one (see `cdc-bench datasets`)")

    out = out or default_out(dataset_names)
    _check_out_apart(out, folders)
    store = ResultsStore(out)
    store.check()   # a damaged store is refused before this run writes its manifest into it
    tasks = plan_tasks(dataset_images, plans, preprocess=str(pre), metrics=tuple(metric_names), device=device,
                       save_recon=save_recon, fid_protocol=fid_protocol, target_bpp=targets, match=match,
                       save_bitstreams=save_bitstreams)
    run_id = new_run_id()
    settings = {"datasets": [d for d, _ in dataset_images], "codecs": [vars(p) for p in plans],
                "metrics": metric_names, "preprocess": str(pre), "workers": workers, "limit": limit,
                "timeout_s": timeout, "fid_protocol": fid_protocol, "data_root": str(data_root or ""),
                "skipped_unavailable": checked.skipped, "target_bpp": list(targets),
                "match": match if targets else None, "batch": batch}
    pool = make_executor(executor, scheduler, workers, device, shared_fs)
    from ..executors.local import InlineExecutor

    settings.update(pool.info() if hasattr(pool, "info") else {"executor": "local" if workers else "inline"})
    manifest = build_manifest(run_id, settings, device)
    failures: list[dict[str, Any]] = []
    load = LoadMonitor()   # the machine's load while the sweep runs (its own workers included): the manifest's "load"
    load.sample()

    def report(row: dict[str, Any]) -> None:
        load.sample_every(SWEEP_SAMPLE_S)
        if row["status"] != "ok":
            failures.append(row)
        if on_row is not None:
            on_row(row)

    try:
        if on_executor is not None:
            on_executor(pool)
        store.start_run(run_id, manifest)
        with sigterm_raises():
            summary = sweep(tasks, store, pool, run_id=run_id,
                            timeout=None if isinstance(pool, InlineExecutor) else timeout,
                            retry_errors=retry_errors, progress=progress, on_row=report, batch=batch)
    except (KeyboardInterrupt, RunStopped) as stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the bookkeeping short
        signum = signal_of(stop)
        saved = _record_stop(store, pool, executor, run_id, manifest, "interrupted", signal.Signals(signum).name,
                             load)
        raise SweepInterrupted(signum, saved, out) from None
    except CdcBenchError as err:  # a lost scheduler, a full disk: what is stored stays, the manifest says why
        _record_stop(store, pool, executor, run_id, manifest, "failed", str(err), load)
        raise
    finally:
        if hasattr(pool, "info"):
            settings.update(pool.info())  # the manifest lists every worker's versions, late joiners too
        if hasattr(pool, "close") and pool is not executor:
            pool.close()
    dataset_rows = []
    if any(info.dataset_level for info in metric_infos):
        from .dataset_metrics import compute_dataset_metrics

        try:
            dataset_rows = compute_dataset_metrics(store, [m.name for m in metric_infos if m.dataset_level],
                                                   protocol=fid_protocol)
        except CdcBenchError as err:   # damaged stored features: the rows stay, the manifest says why
            _record_stop(store, None, executor, run_id, manifest, "failed", str(err), load)
            raise
    load.sample()
    manifest.update(ended_at=timestamp(), summary=summary.as_dict(), load=load.as_dict())
    store.end_run(run_id, manifest)
    store.close()
    return RunOutcome(out, summary, manifest, plans, tasks, failures, dataset_rows)


def _check_out_apart(out: Path, folders: Sequence[tuple[str, Any]]) -> None:
    """The results folder must not be a dataset's own folder: its results.* files and recon/ would be written
    among the originals (and listed as skipped files on every later run)."""
    here = out.expanduser().resolve()
    for name, where in folders:
        if where is not None and Path(where).resolve() == here:
            raise ConfigError(f"out={str(out)!r} is the folder of dataset {name}; keep results apart from the "
                              f"originals, e.g. --out results/{file_stem(Path(where).name)}")


def _record_stop(store: ResultsStore, pool: Any, executor: Any, run_id: str, manifest: dict[str, Any], status: str,
                 reason: str, load: LoadMonitor) -> int:
    """End a run that stopped early: workers and cluster down first, then the manifest records ``status``, why and
    how many rows this run saved (the report shows it). Returns that count. A store that cannot take the manifest
    (the disk is full) keeps its rows all the same: the run's own error is the one to report."""
    if hasattr(pool, "close") and pool is not executor:
        pool.close()
    try:
        frame = store.frame()
        saved = int((frame["run_id"] == run_id).sum()) if "run_id" in frame else 0
        load.sample()
        manifest.update(ended_at=timestamp(), status=status, interrupted={"reason": reason, "rows_saved": saved},
                        load=load.as_dict())
        store.end_run(run_id, manifest)
    except StoreError:
        saved = -1
    finally:
        store.close()
    return saved


def make_executor(kind: str | Any, scheduler: str | None, workers: int, device: str, shared_fs: bool):
    """The engine: a local pool (pebble), this process (``workers=0``), Dask, or an executor object as given."""
    from ..executors.local import InlineExecutor, ProcessExecutor

    if not isinstance(kind, str):
        return kind
    if kind not in ("local", "dask"):
        raise ConfigError(f"executor={kind!r}: choose local or dask")
    if kind == "local" and not scheduler:
        return InlineExecutor() if workers == 0 else ProcessExecutor(workers)
    from ..executors.dask import DaskExecutor

    return DaskExecutor(scheduler, max(1, workers), device=device, shared_fs=shared_fs).start()
