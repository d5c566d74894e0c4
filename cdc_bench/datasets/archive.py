"""Safe extraction of dataset zips: images only, flattened into one folder, nothing outside it.

``zipfile.extractall`` already strips ``..`` and leading slashes, but silently, and it writes any member type.
A dataset zip that names an absolute path, climbs out with ``..`` or carries a symlink is not what its publisher
shipped, so it is rejected whole instead of being half-trusted (zip-slip).
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..images import IMAGE_SUFFIXES


class UnsafeArchiveError(Exception):
    """A zip member would escape the target folder or is a link; the message names the member."""


def unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why a member must not be extracted, or None when it is safe."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "path climbs out of the target folder ('..')"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return None


def _is_image_member(info: zipfile.ZipInfo) -> bool:
    path = PurePosixPath(info.filename.replace("\\", "/"))
    if info.is_dir() or not path.name or path.name.startswith("._") or "__MACOSX" in path.parts:
        return False  # macOS resource forks that some zips carry next to each image
    return path.suffix.lower() in IMAGE_SUFFIXES


def extract_images(zip_path: Path, dest: Path) -> dict[str, str]:
    """Extract the image members of ``zip_path`` into ``dest`` (folders inside the zip dropped).

    Every member is checked before anything is written; one unsafe member rejects the archive. Files are written
    to a temporary folder beside ``dest`` and moved in at the end, so an interrupted extraction leaves no partial
    image. Returns ``{file name: sha256}`` of what was extracted.
    """
    dest = Path(dest)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as err:
        raise UnsafeArchiveError(f"{zip_path}: not a readable zip ({err})") from None
    with archive:
        members = archive.infolist()
        for info in members:
            reason = unsafe_reason(info)
            if reason:
                raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} rejected ({reason}); "
                                         "nothing was extracted")
        images = [m for m in members if _is_image_member(m)]
        seen: dict[str, str] = {}
        for info in images:
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            if base in seen:
                raise UnsafeArchiveError(f"{zip_path}: {info.filename!r} and {seen[base]!r} would both become "
                                         f"{base}; nothing was extracted")
            seen[base] = info.filename
        dest.mkdir(parents=True, exist_ok=True)
        digests: dict[str, str] = {}
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            _write_members(archive, images, staging, digests, zip_path)
            for base in digests:
                (staging / base).replace(dest / base)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return digests


def _write_members(archive: zipfile.ZipFile, images: list[zipfile.ZipInfo], staging: Path,
                   digests: dict[str, str], zip_path: Path) -> None:
    for info in images:
        base = PurePosixPath(info.filename.replace("\\", "/")).name
        digest = hashlib.sha256()
        try:
            with archive.open(info) as src, open(staging / base, "wb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        except (zipfile.BadZipFile, OSError, EOFError) as err:  # CRC error or truncated member
            raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} is damaged ({err}); "
                                     "nothing was extracted") from None
        digests[base] = digest.hexdigest()
