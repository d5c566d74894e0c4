"""Datasets as the runner sees them: a sorted list of named image files, or an error that says how to get them."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..download import sha256_of
from ..errors import DatasetError
from .images import IMAGE_SUFFIXES, InputWarning
from .manifest import DatasetManifest
from ..download import file_stem, inside

# Written beside the images after a verified zip was extracted: each member's real sha256 and size. The zip's
# checksum is the authority, so later checks use this record (CLIC has no published per-image checksums, and
# DIV2K's per-image values were transcribed by hand).
EXTRACTION_RECORD = ".cdc-bench-extracted.json"
SHOWN = 8  # names listed in a message before "and N more"


@dataclass
class ImageItem:
    name: str  # file name without extension, e.g. "kodim01": the image's key in the results store
    path: Path


@dataclass
class DatasetStatus:
    """How much of a dataset is on disk. ``expected`` is None for a folder, whose content defines the set."""

    name: str
    where: Path
    present: int
    expected: int | None
    missing: list[str] = field(default_factory=list)
    corrupted: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)
    verified: bool = False  # sha256 was checked (not only presence and size)
    names_known: bool = True  # False when only a count is known: missing files cannot be named
    note: str = ""

    @property
    def complete(self) -> bool:
        count_ok = self.expected is None or self.present == self.expected
        return count_ok and self.present > 0 and not self.missing and not self.corrupted

    def summary(self) -> str:
        """One line: ``kodak: 3 of 24 images missing: kodim05.png, ...; 1 corrupted: kodim07.png (sha256 mismatch)``."""
        if not self.where.exists():
            return f"{self.name}: not found (expected at {self.where})"
        if self.complete:
            if self.verified:
                check = "sha256 verified"
            elif self.expected is None:
                check = "a folder: nothing to check against"
            elif not self.names_known:
                check = "image count checked; no per-image checksums are known"
            else:
                check = "presence and size checked; --verify checks sha256"
            of = f" of {self.expected}" if self.expected is not None else ""
            return f"{self.name}: {self.present}{of} images present at {self.where} ({check})"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} of {self.expected} images missing: {_names(self.missing)}")
        elif not self.names_known and self.expected is not None and self.present != self.expected:
            parts.append(f"{self.present} images found at {self.where}, {self.expected} expected (no per-image "
                         "list is known, so the files cannot be named)")
        elif self.present == 0:
            parts.append(f"no images at {self.where}")
        if self.corrupted:
            shown = ", ".join(f"{name} ({why})" for name, why in self.corrupted[:SHOWN])
            more = f" and {len(self.corrupted) - SHOWN} more" if len(self.corrupted) > SHOWN else ""
            parts.append(f"{len(self.corrupted)} corrupted: {shown}{more}")
        return f"{self.name}: " + "; ".join(parts)


def _names(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (hidden files and partial downloads skipped), sorted by name.

    A dangling symbolic link with an image suffix is listed too: it then fails as an error row that names it,
    instead of vanishing from the set without a word.
    """
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _image_name(p) and (p.is_file() or dangling(p)))


def image_name(path: Path) -> str:
    """The image's key in the results store: the file name without extension, with bytes that are not UTF-8
    written as ``\\xff`` (SQLite and the terminal take only valid text; such a name used to end the sweep)."""
    return path.stem.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def dangling(path: Path) -> bool:
    """A symbolic link whose target does not exist."""
    return path.is_symlink() and not path.exists()


def _image_name(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def warn_listing(name: str, folder: Path, paths: list[Path]) -> None:
    """Warn, naming the files, about what a folder listing will not read as expected: dangling links (listed;
    their rows fail), pipes or devices with an image suffix (skipped: opening one could block) and files skipped
    because their suffix is not an image suffix. Hidden files and subfolders are skipped without a word."""
    for path in paths:
        if dangling(path):
            warnings.warn(f"{name}: {path.name} is a dangling symbolic link (its target {os.readlink(path)} does "
                          "not exist); it is listed and its rows will fail", InputWarning, stacklevel=3)
    entries = [p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir()]
    special = sorted(p.name for p in entries if _image_name(p) and not p.is_file() and not dangling(p))
    if special:
        warnings.warn(f"{name}: skipped {_names(special)}: not a regular file (a pipe, socket or device)",
                      InputWarning, stacklevel=3)
    skipped = sorted(p.name for p in entries if not _image_name(p))
    if skipped:
        warnings.warn(f"{name}: {len(skipped)} file{'s' * (len(skipped) != 1)} skipped, not an image by its suffix "
                      f"({', '.join(IMAGE_SUFFIXES)}): {_names(skipped)}", InputWarning, stacklevel=3)


class Dataset:
    """A named set of images. Subclasses fill ``status`` and ``_paths``; ``images`` is shared."""

    name: str
    where: Path
    source_url: str = ""

    def status(self, verify: bool = False) -> DatasetStatus:
        raise NotImplementedError

    def how_to_fix(self, status: DatasetStatus) -> str:
        return ""

    def fetch(self) -> DatasetStatus:
        """Download what is missing (sha256-verified); datasets that cannot be downloaded just report status."""
        return self.status()

    def _paths(self, status: DatasetStatus) -> list[Path]:
        raise NotImplementedError

    def images(self, verify: bool = False) -> list[ImageItem]:
        """The images, sorted by name. Raises :class:`DatasetError` when absent, incomplete or (verify) corrupted."""
        status = self.status(verify=verify)
        if not status.complete:
            fix = self.how_to_fix(status)
            raise DatasetError(status.summary() + (f"\n{fix}" if fix else ""))
        items = [ImageItem(image_name(p), p) for p in self._paths(status)]
        return sorted(items, key=lambda item: item.name)


class ManifestDataset(Dataset):
    """A dataset described by a manifest, kept under ``data_root/<name>/``."""

    def __init__(self, manifest: DatasetManifest, data_root: Path):
        self.manifest = manifest
        self.name = manifest.name
        self.data_root = Path(data_root)
        self.where = inside(self.data_root, file_stem(manifest.name))  # a plain name (load_manifest)
        self.source_url = manifest.source_url

    def record(self) -> dict[str, dict] | None:
        """The extraction record (file name -> {sha256, bytes}), if the images came from a verified zip here."""
        path = self.where / EXTRACTION_RECORD
        try:
            files = json.loads(path.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return files if isinstance(files, dict) else None

    def expected_files(self) -> dict[str, tuple[str | None, int | None]] | None:
        """File name -> (sha256, bytes) the dataset must hold, or None when only the count is known."""
        record = self.record()
        if self.manifest.files is not None:
            expected = {f.name: (f.sha256, f.bytes) for f in self.manifest.files}
            for name, info in (record or {}).items():
                if name in expected:
                    expected[name] = (info.get("sha256"), info.get("bytes"))
            return expected
        if record is not None and len(record) == self.manifest.count:
            return {name: (info.get("sha256"), info.get("bytes")) for name, info in record.items()}
        return None

    def status(self, verify: bool = False) -> DatasetStatus:
        expected = self.expected_files()
        if expected is None:
            found = image_files(self.where)
            return DatasetStatus(self.name, self.where, len(found), self.manifest.count, verified=False,
                                 names_known=False)
        missing, corrupted, present = [], [], 0
        for name, (sha, size) in sorted(expected.items()):
            path = self.where / name
            if dangling(path):
                corrupted.append((name, f"dangling symbolic link to {os.readlink(path)}"))
                continue
            if not path.is_file():
                missing.append(name)
                continue
            present += 1
            actual = path.stat().st_size
            if size is not None and actual != size:
                corrupted.append((name, f"{actual} bytes, expected {size}"))
            elif verify and sha is not None and sha256_of(path) != sha:
                corrupted.append((name, "sha256 mismatch"))
        checked = verify and all(sha for sha, _ in expected.values())
        return DatasetStatus(self.name, self.where, present, len(expected), missing, corrupted, verified=checked)

    def _paths(self, status: DatasetStatus) -> list[Path]:
        expected = self.expected_files()
        if expected is None:
            paths = image_files(self.where)
            warn_listing(self.name, self.where, paths)
            return paths
        return [self.where / name for name in expected]

    def how_to_fix(self, status: DatasetStatus) -> str:
        from .fetch import how_to_fix

        return how_to_fix(self, status)

    def fetch(self) -> DatasetStatus:
        from .fetch import fetch_dataset

        return fetch_dataset(self)
