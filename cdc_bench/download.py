"""Downloading files with sha256 verification, and the offline error every downloader raises.

Used for datasets and for weight files alike. A download lands in a temporary file beside the target and is
renamed into place only once its checksum matches, so a killed or corrupted download never looks finished.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


class DownloadError(Exception):
    """A file could not be fetched or failed its checksum. The message says what to do instead."""


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


def download(url: str, dest: str | Path, sha256: str | None = None, *, what: str | None = None,
             timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` (atomically), checking ``sha256`` when given. Returns ``dest``.

    An existing ``dest`` with the right checksum is kept as is; a wrong one is replaced.
    """
    dest = Path(dest)
    what = what or dest.name
    if dest.exists() and (sha256 is None or sha256_of(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "cdc-bench"})
            with urllib.request.urlopen(request, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                _copy(response, out, total, what if progress else None)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise DownloadError(offline_message(what, url, dest, err)) from None
        if sha256 is not None:
            got = sha256_of(tmp)
            if got != sha256:
                raise DownloadError(f"{what} from {url} has sha256 {got}, expected {sha256}; "
                                    f"the file was not kept. Retry, or place a verified copy at {dest}")
        tmp.replace(dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _copy(src, dst, total: int | None, label: str | None) -> None:
    if label is None:
        shutil.copyfileobj(src, dst, CHUNK)
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
        for block in iter(lambda: src.read(CHUNK), b""):
            dst.write(block)
            bar.update(len(block))


def cache_dir() -> Path:
    """cdc-bench's own cache (``$CDC_BENCH_CACHE`` or ``~/.cache/cdc-bench``)."""
    root = os.environ.get("CDC_BENCH_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "cdc-bench")
    return Path(root).expanduser()
