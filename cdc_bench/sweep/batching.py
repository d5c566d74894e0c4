"""Batched decoding (``cdc-bench run --batch N``): same-size images of one rate point decoded in one call.

A learned decoder (CDC) runs one network call per sampling step for a whole batch, which can raise throughput;
the rows must stay those of an unbatched run. So:

* :func:`batch_tasks` groups the pending tasks that differ only in their image (same dataset, codec, options, rate
  point, preprocessing, device, metrics) into :class:`TaskBatch` es of at most N, in plan order. Sizes are known
  only once an image is read, so :func:`run_batch` splits a batch into same-size sub-batches in the worker.
* :func:`run_batch` encodes each item alone (encode times are the item's own), decodes each same-size group with
  ``codec.decode_batch``, then measures each item alone. The group's decode time is apportioned: every row gets
  ``decode_s`` = group time / n and ``decode_batch`` = n. The codec seeds each image alone (CDC: its own generator
  per image), so a batched image is the unbatched one up to the backend's batch-dependent rounding.
* One item's failure never fails the others: an item that fails to read or encode fails alone, and when a batched
  decode raises, the group is decoded one item at a time (``decode_batch`` = 1 and a warning in the row), so only
  the item at fault gets an error row.
* A batch that produced no result (timeout, dead worker) becomes that failure for every one of its items
  (:func:`unbatch`); the store and resume work per item as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from .worker import EncodedItem, Task, TaskResult, decode_item, encode_item, finish_item

#: the task fields that may differ inside a batch (everything else is one rate point of one configuration)
PER_IMAGE_FIELDS = ("image", "path", "image_data", "recon_path", "recon_png")


@dataclass(frozen=True)
class TaskBatch:
    """Tasks of one rate point and configuration, differing only in their image: one unit of work for a worker."""

    tasks: tuple[Task, ...]

    @property
    def key(self) -> tuple[tuple[str, ...], ...]:
        return tuple(task.key for task in self.tasks)

    def __repr__(self) -> str:  # the tasks' bytes fields would flood logs
        first = self.tasks[0]
        return f"TaskBatch({len(self.tasks)} x {first.dataset} {first.codec} q={first.quality})"


def batch_key(task: Task) -> tuple:
    """What tasks of one batch share: every field except the image's own."""
    return tuple((name, value) for name, value in vars(task).items() if name not in PER_IMAGE_FIELDS)


def batch_tasks(tasks: Iterable[Task], size: int) -> list[TaskBatch]:
    """Group tasks that differ only in their image into batches of at most ``size``, in plan order."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    groups: dict[tuple, list[Task]] = {}
    for task in tasks:
        groups.setdefault(batch_key(task), []).append(task)
    return [TaskBatch(tuple(group[i:i + size])) for group in groups.values() for i in range(0, len(group), size)]


def run_batch(batch: TaskBatch) -> list[TaskResult]:
    """Encode, decode (same-size images in one ``decode_batch`` call) and measure the items of a batch.

    Pure and picklable like :func:`cdc_bench.sweep.worker.run_task`; returns one result per task, in order, and never
    raises for an item's failure.
    """
    items = [encode_item(task) for task in batch.tasks]
    results: list[TaskResult | None] = [item if isinstance(item, TaskResult) else None for item in items]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, item in enumerate(items):
        if isinstance(item, EncodedItem):
            groups.setdefault(item.original.shape, []).append(i)
    for indexes in groups.values():
        group = [items[i] for i in indexes]
        for i, result in zip(indexes, _decode_and_finish(group)):  # type: ignore[arg-type]
            results[i] = result
    return results  # type: ignore[return-value]


def _decode_and_finish(group: list[EncodedItem]) -> list[TaskResult]:
    """One ``decode_batch`` call for the group, its time shared equally; one at a time if the batch call fails."""
    codec = group[0].codec
    try:
        start = time.perf_counter()
        recons = codec.decode_batch([item.encoded.data for item in group])
        share = (time.perf_counter() - start) / len(group)
    except Exception as err:  # noqa: BLE001 - find the item at fault by decoding each alone
        note = f"batched decode failed ({type(err).__name__}: {err}); decoded alone"
        return [_finish_alone(item, note if len(group) > 1 else None) for item in group]
    results = []
    for item, recon in zip(group, recons):
        item.row["decode_batch"] = len(group)
        results.append(finish_item(item, lambda recon=recon: (recon, share)))
    return results


def _finish_alone(item: EncodedItem, note: str | None) -> TaskResult:
    item.row["decode_batch"] = 1
    if note:
        item.row["warnings"] = "; ".join(filter(None, [item.row.get("warnings"), note]))
    return finish_item(item, lambda: decode_item(item))


def unbatch(pairs: Iterable[tuple[TaskBatch, Any]]) -> Iterator[tuple[Task, TaskResult | BaseException]]:
    """An executor's ``(batch, results or exception)`` pairs as ``(task, result)`` pairs, one per item."""
    try:
        for batch, outcome in pairs:
            if isinstance(outcome, BaseException) or not isinstance(outcome, list):
                for task in batch.tasks:
                    yield task, outcome
            else:
                yield from zip(batch.tasks, outcome)
    finally:
        if hasattr(pairs, "close"):
            pairs.close()  # closing this (a stopped sweep) stops the executor's pool now

