"""The worker side of a sweep: one independent task per item (dataset x codec x rate point x image).

:func:`run_task` is the pure, picklable task function: it reads one image (from its path, or from the bytes the
task carries when the worker has no shared folder), encodes it to bytes, decodes the bytes, measures, and returns
a :class:`TaskResult`: the row plus its artefacts (the reconstruction as PNG bytes with ``--save-recon``, FID
features). It writes nothing and never raises for a failure of the item itself; the row then has status
``error`` (the item's fault: not retried unless asked) or ``env-error`` (the machine's fault: disk, memory, a
killed worker; retried by default). The client side (planning, resuming, storing) is :mod:`cdc_bench.sweep.client`.
Data flows one way: store -> tasks -> workers -> results -> store.
"""

from __future__ import annotations

import functools
import io
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..provenance import timestamp
from ..codecs.base import Codec, CodecError, canonical_options
from ..errors import BitstreamError, is_environment_error
from ..datasets.images import load_image
from ..store.key import ResultKey, quality_text

DEFAULT_METRICS = ("psnr", "ms-ssim")
#: statuses a rerun leaves alone unless --retry-errors (env-error is always retried)
ITEM_FAILURES = ("error", "timeout")


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
    save_recon: bool = False
    fid_protocol: str = "fid256"
    image_data: bytes | None = None   # the file's bytes, for workers that cannot read ``path``
    # measure only (no encode/decode): the saved reconstruction's file, read when the item runs, so the planned
    # tasks hold no reconstruction; executors whose workers cannot read it ship its bytes instead (recon_png)
    recon_path: str | None = None
    recon_png: bytes | None = None
    target_bpp: float | None = None   # matched bitrate: search the rate point for this bpp (quality is its label)
    match: str = "below"
    # FID/KID: the store already holds this image's original features from this extractor (its label): the
    # worker extracts only the reconstruction's, which halves the Inception work of an item
    original_extractor: str | None = None
    save_bitstream: bool = False      # hand back the encoded bytes (``--save-bitstreams``)

    @property
    def options_text(self) -> str:
        return canonical_options(dict(self.options))

    @property
    def key(self) -> tuple[str, ...]:
        """The store key's values (:class:`cdc_bench.store.key.ResultKey`)."""
        return self.result_key.values()

    @property
    def result_key(self) -> ResultKey:
        return ResultKey.of(self.dataset, self.image, self.codec, self.options_text, self.quality, self.preprocess,
                            self.device)

    def __repr__(self) -> str:  # bytes fields would flood logs and Dask's dashboard
        return f"Task({'/'.join(self.key[:2])} {self.codec} q={self.quality})"


@dataclass
class TaskResult:
    """A worker's answer: the row, and the artefacts the parent stores beside it."""

    row: dict[str, Any]
    recon_png: bytes | None = None
    features: Any = None              # metrics.fid.ItemFeatures
    bitstream: bytes | None = None    # the encoded bytes whose length is the row's bpp (``--save-bitstreams``)


@functools.lru_cache(maxsize=8)
def _codec(name: str, options: tuple[tuple[str, Any], ...], device: str) -> Codec:
    """One codec instance per worker process and configuration: learned codecs load their weights once."""
    from ..codecs.registry import create_codec

    return create_codec(name, dict(options), device=device)


@functools.lru_cache(maxsize=2)
def _load(path: str, preprocess: str, data: bytes | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """The last images read by this worker: a sweep runs an image's rate points one after another."""
    image, notes = load_image(path, preprocess, data=data)  # shipped bytes: the same reader and checks
    image.setflags(write=False)  # shared between tasks: no codec may change it
    return image, tuple(notes)


def base_row(task: Task) -> dict[str, Any]:
    return task.result_key.asdict()


def failure_status(err: BaseException) -> str:
    """``env-error`` for the machine's failures (retried by default), ``error`` for the item's own."""
    if is_environment_error(err):
        return "env-error"
    cause = err.__cause__
    if cause is not None and not isinstance(err, BitstreamError) and is_environment_error(cause):
        return "env-error"
    return "error"


def run_task(task: Task) -> TaskResult:
    """Encode, decode and measure one image at one rate point (or only measure a saved reconstruction)."""
    item = encode_item(task)
    if isinstance(item, TaskResult):
        return item
    return finish_item(item, lambda: decode_item(item))


@dataclass
class EncodedItem:
    """An item between its encode and its decode: what :func:`finish_item` needs (see :mod:`.batching`)."""

    task: Task
    row: dict[str, Any]
    original: np.ndarray
    encoded: Any                      # codec.Encoded
    codec: Codec


def encode_item(task: Task) -> EncodedItem | TaskResult:
    """Read and encode one item; a finished :class:`TaskResult` when it failed (or only needed measuring)."""
    row = base_row(task)
    try:
        original, notes = _load(task.path, task.preprocess, task.image_data)
        recon_png = task.recon_png if task.recon_png is not None else read_recon(task.recon_path)
        if recon_png is not None:
            result = _measure_only(task, original, recon_png, TaskResult(row))
            row["finished_at"] = timestamp()
            return result
        row["height"], row["width"] = original.shape[:2]
        row["warnings"] = "; ".join(notes) if notes else None
        codec = _codec(task.codec, task.options, task.device)

        start = time.perf_counter()
        if task.target_bpp is None:
            encoded = codec.encode(original, task.quality)
            row["encode_s"] = time.perf_counter() - start
        else:
            encoded = _match(codec, original, task, row)
            row["match_s"] = time.perf_counter() - start
        return EncodedItem(task, row, original, encoded, codec)
    except Exception as err:  # noqa: BLE001 - one failing item never ends a sweep
        return failed_result(row, err)


def decode_item(item: EncodedItem) -> tuple[np.ndarray, float]:
    """The item's reconstruction, decoded alone, and the seconds it took."""
    start = time.perf_counter()
    recon = item.codec.decode(item.encoded.data)
    return recon, time.perf_counter() - start


def finish_item(item: EncodedItem, decode: Callable[[], tuple[np.ndarray, float]]) -> TaskResult:
    """Decode (``decode()`` returns the reconstruction and its decode time), check, and measure one item."""
    task, row, original, encoded = item.task, item.row, item.original, item.encoded
    result = TaskResult(row)
    try:
        recon, row["decode_s"] = decode()
        if recon.shape != original.shape:
            raise CodecError(f"{task.codec} decoded shape {recon.shape}, original {original.shape}")
        data = encoded.data
        pixels = original.shape[0] * original.shape[1]
        row["bytes"] = len(data)
        row["bpp"] = 8.0 * len(data) / pixels
        row["bpp_estimated"] = (float(encoded.estimated_bits) / pixels if encoded.estimated_bits is not None
                                else None)
        row.update(encoded.info)

        start = time.perf_counter()
        values, result.features = measure(original, recon, task)
        row.update(values)
        row["metrics_s"] = time.perf_counter() - start
        if task.save_recon:
            result.recon_png = png_bytes(recon)
        if task.save_bitstream:
            result.bitstream = bytes(data)
        row.update(status="ok", error=None, traceback=None)
    except Exception as err:  # noqa: BLE001 - one failing item never ends a sweep
        return failed_result(row, err)
    row["finished_at"] = timestamp()
    return result


def failed_result(row: dict[str, Any], err: BaseException) -> TaskResult:
    """The result of an item that failed inside its task (call from the ``except`` block: keeps the traceback)."""
    row["status"] = failure_status(err)
    row["error"] = f"{type(err).__name__}: {err}"
    row["traceback"] = traceback.format_exc(limit=6)
    row["finished_at"] = timestamp()
    return TaskResult(row)


def _match(codec: Codec, original: np.ndarray, task: Task, row: dict[str, Any]):
    """Find the rate point for the task's target bpp; the row records the target, the point and every probe."""
    import json

    from ..codecs.matching import match_rate

    found = match_rate(codec, original, task.target_bpp, task.match)
    row.update(target_bpp=found.target_bpp, matched_rate=quality_text(found.rate), match_met=found.met,
               probes=json.dumps([[quality_text(r), b] for r, b in found.probes]))
    if not found.met:
        row["warnings"] = "; ".join(filter(None, [row.get("warnings"), (
            f"target {found.target_bpp:g} bpp not reached: the lowest rate point of {task.codec} gives "
            f"{found.bpp:.4g} bpp")]))
    return found.encoded


def read_recon(path: str | None) -> bytes | None:
    """The saved reconstruction's bytes; None when there is none (any more) or it cannot be read: the item then
    runs whole, which measures the same numbers (an error row would replace the stored good one)."""
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def with_recon_bytes(task: Any) -> Any:
    """The task (or a batch's tasks) carrying its saved reconstruction's bytes instead of its path, for a worker
    on another machine. Call it just before sending the task: only the tasks in flight then hold bytes."""
    from dataclasses import replace

    batch = getattr(task, "tasks", None)
    if batch is not None:
        return replace(task, tasks=tuple(with_recon_bytes(t) for t in batch))
    if task.recon_path is None:
        return task
    return replace(task, recon_png=read_recon(task.recon_path), recon_path=None)


def _measure_only(task: Task, original: np.ndarray, recon_png: bytes, result: TaskResult) -> TaskResult:
    """A rerun that adds metrics to a row whose reconstruction was saved: no encode, no decode."""
    from PIL import Image

    recon = np.asarray(Image.open(io.BytesIO(recon_png)).convert("RGB"))
    if recon.shape != original.shape:
        raise CodecError(f"the saved reconstruction is {recon.shape}, the original {original.shape}")
    start = time.perf_counter()
    values, result.features = measure(original, recon, task)
    result.row.update(values, status="ok", metrics_s=time.perf_counter() - start)
    return result


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def measure(original: np.ndarray, recon: np.ndarray, task: Task) -> tuple[dict[str, Any], Any]:
    """Per-image metrics, plus the features for dataset-level ones (FID, KID)."""
    from ..metrics import get_metric

    values: dict[str, Any] = {"measured": ",".join(task.metrics)}
    features: list = []
    inception = False
    spaces = {}
    for name in task.metrics:
        info = get_metric(name)
        if not info.dataset_level:
            values[info.column] = info.compute(original, recon, device=task.device)
        elif info.feature_space is None:  # FID, KID: Inception features under the FID protocol
            inception = True
        else:
            spaces[info.feature_space] = info
    if inception:
        from ..metrics.fid import item_features

        features.append(item_features(original, recon, protocol=task.fid_protocol, device=task.device,
                                      stored_original=task.original_extractor))
        values["fid_patches"] = len(features[0].features)
    if spaces:
        from ..metrics.features import space_features

        features += [space_features(space, original, recon, task.device) for space in spaces]
    return values, (features[0] if len(features) == 1 else features or None)
