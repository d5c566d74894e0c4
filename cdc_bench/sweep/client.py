"""The client side of a sweep: plan the tasks, leave out what the store holds, run the rest, store each result.

:func:`sweep` hands the tasks the store does not hold yet to an executor (a local pool, this process, or Dask)
and stores each result the moment it arrives, so a killed sweep resumes where it stopped. The worker side is
:mod:`cdc_bench.sweep.worker`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from ..provenance import timestamp
from ..codecs.plans import CodecPlan
from .worker import DEFAULT_METRICS, ITEM_FAILURES, Task, TaskResult, base_row, failure_status, run_task
from ..store.key import ResultKey, quality_text
from ..store.results import ResultsStore
from ..errors import StoreError


def target_label(target: float, mode: str = "below") -> str:
    """The rate-point text of a matched row: ``bpp<=0.1`` (at most the target) or ``bpp~0.1`` (nearest)."""
    return f"bpp{'<=' if mode == 'below' else '~'}{target:g}"



def plan_tasks(datasets: Iterable[tuple[str, list[tuple[str, Path]]]], codecs: list[CodecPlan], *,
               preprocess: str = "none", metrics: tuple[str, ...] = DEFAULT_METRICS, device: str = "cpu",
               save_recon: bool = False, fid_protocol: str = "fid256",
               target_bpp: Iterable[float] = (), match: str = "below", save_bitstreams: bool = False) -> list[Task]:
    """All tasks of a sweep. ``datasets`` yields (dataset name, [(image name, path), ...]).

    With ``target_bpp``, each codec runs once per target instead of at its rate points: the worker searches the
    rate point whose real bpp meets the target (:mod:`cdc_bench.codecs.matching`), and the row's rate point is the
    target's label (``bpp<=0.2``).
    """
    targets = list(target_bpp)
    tasks = []
    for dataset, images in datasets:
        for plan in codecs:
            options = tuple(sorted(plan.options.items()))
            for image, path in images:  # an image's rate points together, so workers reuse the decoded image
                common = (dataset, image, str(path), preprocess, plan.name, options)
                for rate in ([] if targets else plan.rate_points):
                    tasks.append(Task(*common, rate, tuple(metrics), device, save_recon, fid_protocol,
                                      save_bitstream=save_bitstreams))
                for target in targets:
                    tasks.append(Task(*common, target_label(target, match), tuple(metrics), device, save_recon,
                                      fid_protocol, target_bpp=float(target), match=match,
                                      save_bitstream=save_bitstreams))
    return tasks


def pending_tasks(tasks: list[Task], store: ResultsStore, retry_errors: bool = False) -> list[Task]:
    """The tasks whose results the store lacks, each reduced to what is missing.

    A row is done when its status is ok and every requested metric has a value (dataset-level metrics: its
    features under the FID protocol are stored). A row that lacks only metrics is measured again from its saved
    reconstruction where there is one (no encode), else the item is run again. ``error`` and ``timeout`` rows are
    left alone unless ``retry_errors``; ``env-error`` rows are always retried.
    """
    from ..metrics import get_metric

    infos = {name: get_metric(name) for t in tasks for name in t.metrics}
    columns = {info.column for info in infos.values() if not info.dataset_level}
    rows = store.rows_by_key(columns | {"measured"})
    features = {p: store.feature_keys(p) for p in {t.fid_protocol for t in tasks
                                                   if any(infos[m].dataset_level for m in t.metrics)}}
    todo = []
    for task in tasks:
        row = rows.get(task.key)
        if row is None or row["status"] not in ("ok",) + ITEM_FAILURES:
            todo.append(task)  # new, or env-error (or a status this version does not know)
            continue
        if row["status"] in ITEM_FAILURES:
            if retry_errors:
                todo.append(task)
            continue
        measured = set((row.get("measured") or "").split(","))
        missing = tuple(m for m in task.metrics if (task.key not in features[task.fid_protocol]
                                                    if infos[m].dataset_level else
                                                    m not in measured and row.get(infos[m].column) is None))
        # the reconstruction's path, not its bytes: the worker reads it when the item runs, so the client never
        # holds every saved reconstruction at once (worker.with_recon_bytes ships it to a remote worker)
        recon = store.recon_file(base_row(task)) if missing or task.save_recon else None
        if task.save_recon and not recon.is_file():
            todo.append(task)  # asked to keep reconstructions this sweep did not keep: run the item again
        elif task.save_bitstream and not store.bitstream_file(base_row(task)).is_file():
            todo.append(task)  # the same for the bytes: only a new encode gives them
        elif missing:
            todo.append(replace(task, metrics=missing, recon_path=str(recon.absolute()), save_recon=False)
                        if recon.is_file() else task)
    return todo


def with_stored_originals(tasks: list[Task], store: ResultsStore) -> list[Task]:
    """Tell each FID/KID task whose original's features the store holds (and from which extractor), so the
    worker extracts only the reconstruction's: once per image and protocol, not once per item."""
    from ..metrics import get_metric

    if not any(get_metric(m).dataset_level for t in tasks for m in t.metrics):
        return tasks
    known = store.original_feature_extractors()
    return [replace(t, original_extractor=known.get((t.dataset, t.image, t.preprocess, t.device, t.fid_protocol)))
            if any(get_metric(m).dataset_level for m in t.metrics) else t for t in tasks]


@dataclass
class SweepSummary:
    planned: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    wall_s: float = 0.0
    work_s: float = 0.0  # sum of encode + decode + metric times of the items run

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sweep(tasks: list[Task], store: ResultsStore, executor, *, run_id: str, timeout: float | None = None,
          retry_errors: bool = False, progress: bool = True,
          on_row: Callable[[dict[str, Any]], None] | None = None, csv_every_s: float = 30.0,
          batch: int = 1) -> SweepSummary:
    """Run what the store lacks (:func:`pending_tasks`), storing each result as it completes.

    ``batch`` > 1 decodes same-size images of one rate point together (:mod:`cdc_bench.sweep.batching`); ``timeout``
    stays per item (a batch of n may take n times it; a batch past that is run again item by item).
    """
    todo = with_stored_originals(pending_tasks(tasks, store, retry_errors), store)
    summary = SweepSummary(planned=len(tasks), skipped=len(tasks) - len(todo))
    start = time.perf_counter()
    last_csv = start
    bar = _progress(len(todo), progress)
    finished = False
    if batch > 1:
        results = _batched(executor, todo, batch, timeout)
    else:
        results = executor.run(run_task, todo, timeout)
    try:
        for task, result in results:
            if not isinstance(result, TaskResult):
                result = TaskResult(failure_row(task, result))
            row = result.row
            row["run_id"] = run_id
            store_result(store, result)
            if row["status"] == "ok":
                summary.ok += 1
                summary.work_s += sum(row.get(k) or 0.0 for k in ("encode_s", "decode_s", "metrics_s"))
            else:
                summary.failed += 1
            if on_row:
                on_row(row)
            bar.set_postfix_str(_describe(task), refresh=False)
            bar.update(1)
            if time.perf_counter() - last_csv > csv_every_s:
                store.write_csv()
                last_csv = time.perf_counter()
        finished = True
    finally:
        if hasattr(results, "close"):
            results.close()  # an interrupted sweep stops its executor now, not when the generator is collected
        bar.close()
        summary.wall_s = time.perf_counter() - start
        try:
            store.write_csv()
        except StoreError:
            if finished:
                raise  # else the error that stopped the sweep (a full disk: the store's own) is the one reported
    return summary


def _batched(executor, todo: list[Task], size: int, timeout: float | None):
    """Results of batched tasks; a batch that timed out is run again one item at a time, each under ``timeout``:
    a stored ``timeout`` means that item alone ran past the limit, never that a neighbour in its batch did."""
    from ..executors.local import TaskTimeout
    from .batching import batch_tasks, run_batch, unbatch

    alone: list[Task] = []

    def keep_timeouts(pairs):
        for group, outcome in pairs:
            if isinstance(outcome, TaskTimeout) and len(group.tasks) > 1:
                alone.extend(group.tasks)
            else:
                yield group, outcome

    yield from unbatch(keep_timeouts(executor.run(run_batch, batch_tasks(todo, size), timeout and timeout * size)))
    if alone:
        yield from executor.run(run_task, alone, timeout)


def store_result(store: ResultsStore, result: TaskResult) -> None:
    """Artefacts first, then the row: a row with status ok always has its artefacts."""
    row = result.row
    if row["status"] == "ok":
        if result.recon_png is not None:
            store.put_recon(row, result.recon_png)
        if result.bitstream is not None:
            store.put_bitstream(row, result.bitstream)
        sets = result.features if isinstance(result.features, list) else [result.features]
        for feats in sets:  # one set per feature space (FID's Inception, FD-DINOv2's DINOv2, CMMD's CLIP)
            if feats is not None:
                store.put_features(ResultKey.from_row(row).values(), feats.protocol, feats.features,
                                   feats.extractor, feats.original_sha1, feats.original)
    store.put_row(row)


def failure_row(task: Task, err: BaseException) -> dict[str, Any]:
    """The row of a task that produced no result (timeout, dead worker, an error outside the task)."""
    from ..executors.local import TaskTimeout

    row = base_row(task)
    row["status"] = "timeout" if isinstance(err, TaskTimeout) else failure_status(err)
    row["error"] = f"{type(err).__name__}: {err}"
    row["finished_at"] = timestamp()
    return row


def _progress(total: int, enabled: bool):
    from .progress import make_progress

    return make_progress(total, enabled)


def _describe(task: Task) -> str:
    """What the progress bar shows while an item runs: its codec, image and rate point."""
    return f"{task.codec} {task.image} {quality_text(task.quality)}"
