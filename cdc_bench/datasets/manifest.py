"""Dataset manifests: what a dataset holds, where it comes from and which checksums are known.

A manifest is a small JSON file (the repository's ``datasets/<name>.json``). It lists either every file with its
sha256 (Kodak, DIV2K) or, where no per-image checksum is published (CLIC 2020), only the image count; an archive
entry says which zip holds the images and its sha256.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..download import file_stem

# The repository's manifest folder: <repo>/datasets next to the package. Images live in subfolders of the data root,
# never here, unless the data root is this very folder (the default in a checkout; `.gitignore` keeps them out).
MANIFEST_DIR = Path(__file__).resolve().parents[2] / "datasets"
# Where an installed wheel would carry them, if pyproject ships them as data files ("share/cdc-bench/datasets").
INSTALLED_MANIFEST_DIR = Path(sys.prefix) / "share" / "cdc-bench" / "datasets"


class ManifestError(DatasetError, ValueError):
    """A manifest file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class FileEntry:
    """One expected image. ``url`` is set when the file is downloaded on its own (Kodak)."""

    name: str
    sha256: str | None = None
    bytes: int | None = None
    url: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class ArchiveEntry:
    """A zip that holds the images; its sha256 is required so nothing unverified is ever extracted."""

    url: str
    sha256: str
    bytes: int | None = None
    sha256_source: str = ""

    @property
    def filename(self) -> str:
        return file_stem(self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0])


@dataclass(frozen=True)
class DatasetManifest:
    name: str
    count: int
    title: str = ""
    homepage: str = ""
    license: str = ""
    layout: str = ""
    checksums: str = ""
    notes: tuple[str, ...] = ()
    files: tuple[FileEntry, ...] | None = None
    archive: ArchiveEntry | None = None
    source_path: Path | None = field(default=None, compare=False)

    @property
    def source_url(self) -> str:
        """The one address to show a user: the archive, else the homepage."""
        return self.archive.url if self.archive else self.homepage

    @property
    def per_file_checksums(self) -> bool:
        return self.files is not None and all(f.sha256 for f in self.files)


def load_manifest(source: dict[str, Any] | str | Path) -> DatasetManifest:
    """Build a manifest from a dict (as parsed from JSON) or a JSON file path. Raises :class:`ManifestError`."""
    where = "manifest"
    path = None
    if not isinstance(source, dict):
        path = Path(source)
        where = str(path)
        try:
            source = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:   # ValueError: not JSON, or not UTF-8 text
            raise ManifestError(f"{where}: cannot read dataset manifest ({err})") from None
    if not isinstance(source, dict):
        raise ManifestError(f"{where}: a dataset manifest must be a JSON object")
    data = source

    def need(key: str, kind: type) -> Any:
        if not isinstance(data.get(key), kind):
            raise ManifestError(f"{where}: field {key!r} must be a {kind.__name__}")
        return data[key]

    name = need("name", str)
    if file_stem(name) != name:  # it names the dataset's folder under the data root
        raise ManifestError(f"{where}: name {name!r} must be a plain name (letters, digits, '._+-'; no '/' or '..')")
    count = need("count", int)
    if isinstance(count, bool) or count < 1:
        raise ManifestError(f"{where}: 'count' must be a whole number of images, at least 1 (got {count!r})")
    files = None
    if data.get("files") is not None:
        files = tuple(_file_entry(item, where) for item in need("files", list))
        if len(files) != count:
            raise ManifestError(f"{where}: 'count' is {count} but {len(files)} files are listed")
        if len({f.name for f in files}) != len(files):
            raise ManifestError(f"{where}: file names repeat")
        stems: dict[str, str] = {}
        for entry in files:  # results are keyed by the name without extension: a.png and a.jpg would share one
            stem = entry.name.rsplit(".", 1)[0]
            if stem in stems:
                raise ManifestError(f"{where}: {stems[stem]} and {entry.name} share the image name {stem!r}")
            stems[stem] = entry.name
    archive = None
    if data.get("archive") is not None:
        raw = need("archive", dict)
        if not isinstance(raw.get("url"), str) or not _is_sha256(raw.get("sha256")):
            raise ManifestError(f"{where}: 'archive' needs a 'url' and a 64-hex-digit 'sha256'")
        archive = ArchiveEntry(raw["url"], raw["sha256"].lower(), raw.get("bytes"), raw.get("sha256_source", ""))
    if archive is None and (files is None or any(f.url is None for f in files)):
        raise ManifestError(f"{where}: give either an 'archive' or a 'url' for every file")
    return DatasetManifest(
        name=name, count=count, title=data.get("title", ""), homepage=data.get("homepage", ""),
        license=data.get("license", ""), layout=data.get("layout", ""), checksums=data.get("checksums", ""),
        notes=tuple(data.get("notes") or ()), files=files, archive=archive, source_path=path)


def _file_entry(item: Any, where: str) -> FileEntry:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ManifestError(f"{where}: each entry of 'files' needs a 'name'")
    name = item["name"]
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ManifestError(f"{where}: file name {name!r} must be a plain file name")
    sha = item.get("sha256")
    if sha is not None and not _is_sha256(sha):
        raise ManifestError(f"{where}: {name}: 'sha256' must be 64 hex digits or null")
    return FileEntry(name, sha.lower() if sha else None, item.get("bytes"), item.get("url"),
                     item.get("width"), item.get("height"))


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def builtin_manifests(folder: Path | None = None) -> dict[str, DatasetManifest]:
    """The manifests shipped in the repository's ``datasets/`` folder (or ``folder``), by name."""
    if folder is None:
        folder = MANIFEST_DIR if in_checkout() else INSTALLED_MANIFEST_DIR
    manifests = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            manifest = load_manifest(path)
            manifests[manifest.name] = manifest
    return manifests


def in_checkout() -> bool:
    """True when running from a source checkout (or editable install) that has the manifest folder.

    The pyproject check matters: in site-packages, ``<site-packages>/datasets`` is Hugging Face's package.
    """
    return MANIFEST_DIR.is_dir() and (MANIFEST_DIR.parent / "pyproject.toml").is_file()
