"""The weights registry: every weight file a codec or metric needs, where it lives, and how to get it.

Codecs and metrics declare their files with :func:`register_weight` at import time; ``cdc-bench weights`` lists
them, and the runner calls :func:`ensure_all` before a sweep starts so a missing file fails fast, not after an
hour. Nothing is downloaded silently mid-sweep: downloads happen in ``ensure`` (before the sweep) or in
``cdc-bench weights --download``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .download import DownloadError, download, sha256_of


class WeightsMissing(DownloadError):
    """A weight file is absent and could not be fetched; the message names the file, its URL and the folder."""


@dataclass
class WeightFile:
    """One weight file. ``fetch`` overrides the plain URL download (e.g. huggingface_hub)."""

    name: str
    url: str
    path: Path
    sha256: str | None = None
    used_by: list[str] = field(default_factory=list)
    fetch: Callable[["WeightFile"], Path] | None = None
    note: str = ""

    def present(self) -> bool:
        return self.locate() is not None

    def locate(self) -> Path | None:
        """Where the file is, if it is there (a ``fetch`` may know other places than ``path``)."""
        return self.path if self.path.exists() else None

    def verify(self) -> bool | None:
        """True/False when a checksum is known and the file is present; None otherwise."""
        where = self.locate()
        if where is None or self.sha256 is None:
            return None
        return sha256_of(where) == self.sha256

    def ensure(self, allow_download: bool = True) -> Path:
        """The file's local path, downloading (and verifying) it first when allowed."""
        where = self.locate()
        if where is not None:
            return where
        if not allow_download:
            raise WeightsMissing(self.missing_message())
        try:
            if self.fetch is not None:
                return self.fetch(self)
            return download(self.url, self.path, self.sha256, what=self.name)
        except DownloadError as err:
            raise WeightsMissing(f"{self.missing_message()} ({err})") from None

    def missing_message(self) -> str:
        return (f"weight file {self.name} is missing: download {self.url} and put it at {self.path}"
                + (f" (sha256 {self.sha256})" if self.sha256 else "")
                + (f". {self.note}" if self.note else ""))


_registry: dict[str, WeightFile] = {}
# Modules whose import registers weight files; imported lazily so listing weights needs no codec to be loaded.
_providers: list[str] = [
    "cdc_bench.metrics.perceptual",
    "cdc_bench.metrics.inception",
    "cdc_bench.cdc.releases",
    "baselines.compressai_zoo",
    "baselines.neuralcompression",
    "baselines.hific",
]


def register_weight(weight: WeightFile) -> WeightFile:
    """Declare a weight file (idempotent: registering the same name again replaces it)."""
    _registry[weight.name] = weight
    return weight


def register_provider(module: str) -> None:
    """Name a module whose import registers weight files (imported lazily by :func:`all_weights`)."""
    if module not in _providers:
        _providers.append(module)


def _load_providers() -> None:
    import importlib

    for module in list(_providers):
        try:
            importlib.import_module(module)
        except ImportError:
            pass


def all_weights() -> list[WeightFile]:
    _load_providers()
    return [_registry[k] for k in sorted(_registry)]


def get_weight(name: str) -> WeightFile:
    _load_providers()
    return _registry[name]


def ensure_all(names: list[str], allow_download: bool = True) -> dict[str, Path]:
    """Resolve several weight files at once, raising one error that lists every missing file."""
    found, missing = {}, []
    for name in names:
        try:
            found[name] = get_weight(name).ensure(allow_download)
        except WeightsMissing as err:
            missing.append(str(err))
    if missing:
        raise WeightsMissing("\n".join(missing))
    return found
