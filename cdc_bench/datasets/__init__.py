"""Datasets: names to image files, with checksums, safe downloads and errors that say what to do.

``get_dataset("kodak")`` looks for ``<data root>/kodak/kodim01.png ...``; ``default`` is five photographs shipped
inside scikit-image (works offline); ``folder:PATH`` is any folder of images. The data root is, in order:
the ``data_root`` argument (``--data-root``), ``$CDC_BENCH_DATA``, the repository's ``datasets/`` folder when
running from a checkout, else ``~/.cache/cdc-bench/datasets`` (``$CDC_BENCH_CACHE/datasets``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..download import cache_dir
from ..errors import UnknownNameError
from ..registry import Registry
from .core import Dataset, DatasetError, DatasetStatus, ImageItem, ManifestDataset
from .local import EmbeddedDataset, FolderDataset
from .manifest import MANIFEST_DIR, DatasetManifest, ManifestError, builtin_manifests, in_checkout, load_manifest

__all__ = ["DATASETS", "Dataset", "DatasetError", "DatasetManifest", "DatasetStatus", "ImageItem", "ManifestError",
           "UnknownNameError", "dataset_from_manifest", "dataset_names", "default_data_root", "get_dataset",
           "load_manifest"]

DEFAULT = "default"
FOLDER_PREFIX = "folder:"


def default_data_root() -> Path:
    """``$CDC_BENCH_DATA``, else ``<repo>/datasets`` in a source checkout, else ``<cache>/datasets``."""
    env = os.environ.get("CDC_BENCH_DATA")
    if env:
        return Path(env).expanduser()
    if in_checkout():
        return MANIFEST_DIR  # a checkout: images go to datasets/<name>/, which .gitignore keeps out of git
    return cache_dir() / "datasets"


#: Dataset names -> a factory ``(data_root) -> Dataset``. The shipped manifests are registered when first listed
#: (their folder is read at that time); a plug-in registers its own factory, or one through the
#: ``cdc_bench.datasets`` entry point group.
DATASETS: Registry[Callable[[Path], Dataset]] = Registry("dataset", "cdc_bench.datasets")
DATASETS.register(lambda data_root: EmbeddedDataset(), name=DEFAULT)


_from_manifests: set[str] = set()


def _register_manifests() -> None:
    """(Re)register the shipped manifests as they are now (the folder is read at each listing, as before)."""
    manifests = builtin_manifests()
    for name in _from_manifests - set(manifests):
        DATASETS.unregister(name)
    _from_manifests.clear()
    for name, manifest in manifests.items():
        if name != DEFAULT:
            DATASETS.register(lambda data_root, m=manifest: dataset_from_manifest(m, data_root), name=name)
            _from_manifests.add(name)


def dataset_names() -> list[str]:
    """Every known dataset name (``folder:PATH`` is accepted too but is not a name)."""
    _register_manifests()
    return [DEFAULT, *(n for n in DATASETS.names() if n != DEFAULT)]


def dataset_from_manifest(manifest: DatasetManifest | dict[str, Any] | str | Path,
                          data_root: Path | None = None) -> ManifestDataset:
    """A dataset from any manifest (a dict, a JSON path or a loaded one): for your own sets, and for tests."""
    if not isinstance(manifest, DatasetManifest):
        manifest = load_manifest(manifest)
    return ManifestDataset(manifest, Path(data_root) if data_root else default_data_root())


def get_dataset(spec: str, data_root: Path | None = None, download: bool = False) -> Dataset:
    """The dataset named ``spec`` (``kodak``, ``default``, ``folder:PATH``...).

    With ``download=True`` a missing or damaged named dataset is fetched now (sha256-verified); errors are
    :class:`DatasetError`. Unknown names raise :class:`UnknownNameError` listing the valid ones.
    """
    spec = spec.strip()
    if spec == DEFAULT:
        return EmbeddedDataset()
    if spec.startswith(FOLDER_PREFIX):
        path = spec[len(FOLDER_PREFIX):].strip()
        if not path:
            raise DatasetError("folder: needs a path, e.g. folder:/data/my-images")
        return FolderDataset(path)
    _register_manifests()
    if spec not in DATASETS:
        raise UnknownNameError("dataset", spec, [*dataset_names(), "folder:PATH"])
    dataset = DATASETS.get(spec)(data_root)
    if download:
        dataset.fetch()
    return dataset
