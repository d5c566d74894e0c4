"""The runner: datasets x codecs x rate points x images, one independent task per item.

:func:`run_task` is the pure, picklable task function: it reads one image, encodes it to bytes, decodes the
bytes, measures, and returns one result row. It never raises for a failure of the item itself; the row then has
status ``error``. :func:`sweep` plans the tasks that are not in the store yet, runs them through an executor and
writes each row as soon as it arrives, so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import functools
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .codec import Codec, CodecError, canonical_options
from .options import CodecPlan
from .images import load_image, save_png
from .store import ResultsStore, item_key, quality_text, recon_path

DEFAULT_METRICS = ("psnr", "ms-ssim")


@dataclass(frozen=True)
class Task:
    """Everything one item needs; plain data so it pickles to a worker."""

    dataset: str
    image: str
    path: str
    preprocess: str
    codec: str
    options: tuple[tuple[str, Any], ...]
    quality: Any
    metrics: tuple[str, ...] = DEFAULT_METRICS
    device: str = "cpu"
    out_dir: str = ""
    save_recon: bool = False
    fid_protocol: str = "fid256"

    @property
    def options_text(self) -> str:
        return canonical_options(dict(self.options))

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.dataset, self.image, self.codec, self.options_text, quality_text(self.quality))


@functools.lru_cache(maxsize=8)
def _codec(name: str, options: tuple[tuple[str, Any], ...], device: str) -> Codec:
    """One codec instance per worker and configuration: learned codecs load their weights once."""
    from .codecs import create_codec

    return create_codec(name, dict(options), device=device)


@functools.lru_cache(maxsize=2)
def _load(path: str, preprocess: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """The last images read by this worker: a sweep runs an image's rate points one after another."""
    image, notes = load_image(path, preprocess)
    image.setflags(write=False)  # shared between tasks: no codec may change it
    return image, tuple(notes)


def base_row(task: Task) -> dict[str, Any]:
    dataset, image, codec, options, quality = task.key
    return {"dataset": dataset, "image": image, "codec": codec, "options": options, "quality": quality,
            "preprocess": task.preprocess}


def run_task(task: Task) -> dict[str, Any]:
    """Encode, decode and measure one image at one rate point; failures become a row with status ``error``."""
    row = base_row(task)
    try:
        original, notes = _load(task.path, task.preprocess)
        row["height"], row["width"] = original.shape[:2]
        if notes:
            row["warnings"] = "; ".join(notes)
        codec = _codec(task.codec, task.options, task.device)

        start = time.perf_counter()
        encoded = codec.encode(original, task.quality)
        row["encode_s"] = time.perf_counter() - start
        data = encoded.data
        pixels = original.shape[0] * original.shape[1]

        start = time.perf_counter()
        recon = codec.decode(data)
        row["decode_s"] = time.perf_counter() - start
        if recon.shape != original.shape:
            raise CodecError(f"{task.codec} decoded shape {recon.shape}, original {original.shape}")

        row["bytes"] = len(data)
        row["bpp"] = 8.0 * len(data) / pixels
        if encoded.estimated_bits is not None:
            row["bpp_estimated"] = float(encoded.estimated_bits) / pixels
        row.update(encoded.info)

        start = time.perf_counter()
        row.update(measure(original, recon, task))
        row["metrics_s"] = time.perf_counter() - start
        if task.save_recon and task.out_dir:
            save_png(recon, recon_path(task.out_dir, *(row[k] for k in ("dataset", "codec", "options", "quality")),
                                       task.image))
        row["status"] = "ok"
    except Exception as err:  # noqa: BLE001 - one failing item never ends a sweep
        row["status"] = "error"
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = traceback.format_exc(limit=6)
    row["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return row


def measure(original: np.ndarray, recon: np.ndarray, task: Task) -> dict[str, Any]:
    """Per-image metrics, plus the feature extraction for dataset-level ones (FID, KID)."""
    from .metrics import get_metric

    values: dict[str, Any] = {}
    dataset_level = []
    for name in task.metrics:
        info = get_metric(name)
        if info.dataset_level:
            dataset_level.append(name)
        else:
            values[info.column] = info.compute(original, recon, device=task.device)
    if dataset_level and task.out_dir:
        from .metrics.fid import record_item_features

        values["fid_patches"] = record_item_features(
            Path(task.out_dir), task.dataset, task.image, item_key(*task.key), original, recon,
            protocol=task.fid_protocol, device=task.device)
    return values


# --- planning ---------------------------------------------------------------------------------------------

def plan_tasks(datasets: Iterable[tuple[str, list[tuple[str, Path]]]], codecs: list[CodecPlan], *,
               preprocess: str = "none", metrics: tuple[str, ...] = DEFAULT_METRICS, device: str = "cpu",
               out_dir: str | Path = "", save_recon: bool = False, fid_protocol: str = "fid256") -> list[Task]:
    """All tasks of a sweep. ``datasets`` yields (dataset name, [(image name, path), ...])."""
    tasks = []
    for dataset, images in datasets:
        for plan in codecs:
            options = tuple(sorted(plan.options.items()))
            for image, path in images:  # an image's rate points together, so workers reuse the decoded image
                for rate in plan.rate_points:
                    tasks.append(Task(dataset, image, str(path), preprocess, plan.name, options, rate,
                                      tuple(metrics), device, str(out_dir), save_recon, fid_protocol))
    return tasks


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
          on_row: Callable[[dict[str, Any]], None] | None = None, csv_every_s: float = 30.0) -> SweepSummary:
    """Run the tasks that the store does not hold yet, writing each row as it completes."""
    done = store.finished_keys(("ok",) if retry_errors else ("ok", "error", "timeout"))
    todo = [t for t in tasks if t.key not in done]
    summary = SweepSummary(planned=len(tasks), skipped=len(tasks) - len(todo))
    start = time.perf_counter()
    last_csv = start
    bar = _progress(len(todo), progress)
    try:
        for task, result in executor.run(run_task, todo, timeout):
            row = result if isinstance(result, dict) else _failure_row(task, result)
            row["run_id"] = run_id
            store.put_row(row)
            if row["status"] == "ok":
                summary.ok += 1
                summary.work_s += sum(row.get(k) or 0.0 for k in ("encode_s", "decode_s", "metrics_s"))
            else:
                summary.failed += 1
            if on_row:
                on_row(row)
            bar.update(1)
            if time.perf_counter() - last_csv > csv_every_s:
                store.write_csv()
                last_csv = time.perf_counter()
    finally:
        bar.close()
        summary.wall_s = time.perf_counter() - start
        store.write_csv()
    return summary


def _failure_row(task: Task, err: BaseException) -> dict[str, Any]:
    from .executor import TaskTimeout

    row = base_row(task)
    row["status"] = "timeout" if isinstance(err, TaskTimeout) else "error"
    row["error"] = f"{type(err).__name__}: {err}"
    row["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return row


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="item", desc="cdc-bench", disable=not enabled, dynamic_ncols=True)
