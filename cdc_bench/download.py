"""Downloading files with sha256 verification, and the offline error every downloader raises.

Used for datasets and for weight files alike. A download lands in a temporary file beside the target and is
renamed into place only once its checksum matches, so a killed or corrupted download never looks finished.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .errors import ChecksumMismatch, DownloadError

__all__ = ["CHUNK", "ChecksumMismatch", "DownloadError", "cache_dir", "download", "mismatch_message",
           "offline_message", "sha256_of"]

CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def offline_message(what: str, url: str, dest: Path, cause: object = "") -> str:
    because = f" ({cause})" if cause else ""
    return (f"could not download {what} from {url}{because}. "
            f"If this machine is offline, download it elsewhere and put it at {dest}")


def mismatch_message(path: Path, expected: str, got: str, url: str) -> str:
    return (f"{path}: this file fails its sha256 (expected {expected}, got {got}): delete it or replace it "
            f"with a verified copy of {url}")


def download(url: str, dest: str | Path, sha256: str | None = None, *, what: str | None = None,
             timeout: float = 60.0, progress: bool = True, size: int | None = None) -> Path:
    """Fetch ``url`` to ``dest`` (atomically), checking ``sha256`` when given. Returns ``dest``.

    An existing ``dest`` with the right checksum is kept as is; a wrong one is replaced by a verified download,
    and when that download fails the error says that the file there fails its sha256 (not merely "offline").
    ``size`` (bytes, with ``sha256``) stops a server that sends more than the file can hold.
    """
    dest = Path(dest)
    what = what or dest.name
    stale = None  # sha256 of a wrong file already at dest
    if dest.is_file():
        stale = None if sha256 is None else sha256_of(dest)
        if stale is None or stale == sha256:
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "cdc-bench"})
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                limit = size if sha256 is not None else None
                if limit is not None and total is not None and total > limit:
                    raise _too_long(what, url, limit)
                _copy(response, out, total, what if progress else None, limit, lambda: _too_long(what, url, limit))
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            if stale is not None:
                raise ChecksumMismatch(f"{mismatch_message(dest, sha256, stale, url)} (a fresh download failed "
                                       f"too: {err})") from None
            raise DownloadError(offline_message(what, url, dest, err)) from None
        if sha256 is not None:
            got = sha256_of(tmp)
            if got != sha256:
                raise ChecksumMismatch(f"{what} from {url} has sha256 {got}, expected {sha256}; "
                                       f"the file was not kept. Retry, or place a verified copy at {dest}")
        tmp.replace(dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _too_long(what: str, url: str, size: int | None) -> ChecksumMismatch:
    return ChecksumMismatch(f"{what} from {url} is longer than the expected {size:,} bytes, so it cannot match "
                            "its sha256; the download was stopped and nothing was kept")


def _copy(src, dst, total: int | None, label: str | None, limit: int | None, too_long) -> None:
    from tqdm import tqdm

    written = 0
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False, disable=label is None) as bar:
        for block in iter(lambda: src.read(CHUNK), b""):
            written += len(block)
            if limit is not None and written > limit:
                raise too_long()
            dst.write(block)
            bar.update(len(block))


def cache_dir() -> Path:
    """cdc-bench's own cache (``$CDC_BENCH_CACHE`` or ``~/.cache/cdc-bench``)."""
    root = os.environ.get("CDC_BENCH_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "cdc-bench")
    return Path(root).expanduser()
