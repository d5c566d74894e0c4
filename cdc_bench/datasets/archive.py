"""Safe extraction of dataset zips: images only, flattened into one folder, nothing outside it.

``zipfile.extractall`` already strips ``..`` and leading slashes, but silently, and it writes any member type.
A dataset zip that names an absolute path, climbs out with ``..`` or carries a symlink is not what its publisher
shipped, so it is rejected whole instead of being half-trusted (zip-slip). Its size is bounded too: the member
count and the total uncompressed size, read from the zip's central directory, are checked against limits before
anything is written (a zip that matched its checksum can still be a zip bomb if the manifest is not ours).
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import DatasetError
from .images import IMAGE_SUFFIXES

# The images in a dataset zip are already compressed (PNG, JPEG): they expand to about the zip's size. A zip may
# expand to EXPANSION times what the manifest expects (plus SLACK), never beyond MAX_EXTRACT_BYTES, and may hold
# EXPANSION times the expected image count plus MEMBER_SLACK members (folders, readme files).
EXPANSION = 4
SLACK = 64 << 20
MAX_EXTRACT_BYTES = 64 << 30
MEMBER_SLACK = 256


class UnsafeArchiveError(DatasetError):
    """A zip member would escape the target folder or is a link, or the zip is too large; the message says which."""


def extraction_limits(expected_bytes: int | None, expected_count: int) -> tuple[int, int]:
    """(max total uncompressed bytes of the extracted images, max members) for a zip expected to hold
    ``expected_count`` images of about ``expected_bytes`` in all (None: unknown, the absolute cap applies)."""
    max_bytes = MAX_EXTRACT_BYTES if expected_bytes is None else min(MAX_EXTRACT_BYTES,
                                                                       EXPANSION * expected_bytes + SLACK)
    return max_bytes, EXPANSION * expected_count + MEMBER_SLACK


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


def extract_images(zip_path: Path, dest: Path, *, max_bytes: int = MAX_EXTRACT_BYTES,
                   max_members: int | None = None) -> dict[str, str]:
    """Extract the image members of ``zip_path`` into ``dest`` (folders inside the zip dropped).

    Every member is checked before anything is written; one unsafe member, more than ``max_members`` members or
    images totalling more than ``max_bytes`` (uncompressed, as the headers declare; zipfile never reads past a
    member's declared size) reject the archive. Files are written to a temporary folder beside ``dest`` and
    moved in at the end, so an interrupted extraction leaves no partial image. Returns ``{file name: sha256}``.
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
        _check_size(zip_path, dest, members, images, max_bytes, max_members)
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


def _check_size(zip_path: Path, dest: Path, members: list[zipfile.ZipInfo], images: list[zipfile.ZipInfo],
                max_bytes: int, max_members: int | None) -> None:
    if max_members is not None and len(members) > max_members:
        raise UnsafeArchiveError(f"{zip_path}: holds {len(members):,} members, over the limit of {max_members:,} "
                                 "for this dataset; nothing was extracted")
    total = sum(info.file_size for info in images)
    if total > max_bytes:
        raise UnsafeArchiveError(f"{zip_path}: its images would expand to {total:,} bytes, over the limit of "
                                 f"{max_bytes:,} bytes for this dataset; nothing was extracted")
    free = _free_bytes(dest)
    if free is not None and total > free:
        raise UnsafeArchiveError(f"{zip_path}: its images need {total:,} bytes but only {free:,} are free at "
                                 f"{dest}; free some space or use another --data-root; nothing was extracted")


def _free_bytes(dest: Path) -> int | None:
    folder = dest
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


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
        except (RuntimeError, NotImplementedError) as err:  # encrypted, or a method zipfile lacks (deflate64)
            raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} cannot be extracted ({err}); unzip "
                                     "the images by hand into the dataset folder; nothing was extracted") from None
        digests[base] = digest.hexdigest()
