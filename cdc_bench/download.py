"""Downloading files with sha256 verification, and the offline error every downloader raises.

Used for datasets and for weight files alike. The transfer is pooch's (``requests`` streaming, retries, a
progress bar, a temporary file renamed into place only once its hash matches, so a killed or corrupted download
never looks finished). What stays ours: the size limit (a server sending more than the manifest's size is cut
off, since the file cannot match its sha256), and the messages (offline: where to put the file by hand; a file
that fails its sha256: which, and what to do).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from .errors import ConfigError, ChecksumMismatch, DownloadError

__all__ = ["CHUNK", "ChecksumMismatch", "DownloadError", "cache_dir", "download", "mismatch_message",
           "offline_message", "sha256_of"]

CHUNK = 1 << 20
RETRIES = 1  # pooch's retry_if_failed: a failed transfer (or hash) is tried again this many times


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
    import pooch
    import requests

    dest = Path(dest)
    what = what or dest.name
    stale = None  # sha256 of a wrong file already at dest
    if dest.is_file():
        stale = None if sha256 is None else sha256_of(dest)
        if stale is None or stale == sha256:
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetcher = pooch.create(path=dest.parent, base_url="", registry={dest.name: f"sha256:{sha256}" if sha256 else None},
                           urls={dest.name: url}, retry_if_failed=RETRIES)
    downloader = _Limited(pooch.HTTPDownloader(progressbar=progress, chunk_size=CHUNK, timeout=timeout,
                                               headers={"User-Agent": "cdc-bench"}),
                          size if sha256 is not None else None, what, url)
    pooch.get_logger().setLevel(logging.WARNING)  # pooch logs every download at INFO
    try:
        return Path(fetcher.fetch(dest.name, downloader=downloader))
    except ValueError as err:  # pooch: the downloaded file's hash does not match (after its retries)
        got = re.search(r"but got ([0-9a-f]{64})", str(err))
        raise ChecksumMismatch(f"{what} from {url} has sha256 {got.group(1) if got else '(unknown)'}, expected "
                               f"{sha256}; the file was not kept. Retry, or place a verified copy at {dest}") from None
    except (requests.RequestException, OSError) as err:
        if stale is not None:
            raise ChecksumMismatch(f"{mismatch_message(dest, sha256, stale, url)} (a fresh download failed "
                                   f"too: {err})") from None
        raise DownloadError(offline_message(what, url, dest, err)) from None
    finally:
        for part in dest.parent.glob(f"tmp*{dest.name}*"):  # what pooch leaves when a transfer is cut off
            part.unlink(missing_ok=True)


class _Limited:
    """A pooch downloader that writes through a byte counter: more than ``limit`` bytes stops the transfer."""

    def __init__(self, inner, limit: int | None, what: str, url: str) -> None:
        self.inner, self.limit, self.what, self.url = inner, limit, what, url

    def __call__(self, url: str, output_file, pooch_obj, check_only: bool = False):
        with open(output_file, "wb") as raw:
            return self.inner(url, _Counting(raw, self.limit, lambda: _too_long(self.what, self.url, self.limit)),
                              pooch_obj, check_only=check_only)


class _Counting:
    def __init__(self, raw, limit: int | None, too_long) -> None:
        self.raw, self.limit, self.too_long, self.written = raw, limit, too_long, 0

    def write(self, block: bytes) -> int:
        self.written += len(block)
        if self.limit is not None and self.written > self.limit:
            raise self.too_long()
        return self.raw.write(block)

    def __getattr__(self, name):
        return getattr(self.raw, name)


def _too_long(what: str, url: str, size: int | None) -> ChecksumMismatch:
    return ChecksumMismatch(f"{what} from {url} is longer than the expected {size:,} bytes, so it cannot match "
                            "its sha256; the download was stopped and nothing was kept")


def cache_dir() -> Path:
    """cdc-bench's own cache (``$CDC_BENCH_CACHE`` or ``~/.cache/cdc-bench``)."""
    root = os.environ.get("CDC_BENCH_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "cdc-bench")
    return Path(root).expanduser()


# -- the Hugging Face hub: where its cache is, and whether it answers (every hub-hosted weight file asks) ----
PROBE_TIMEOUT_S = 3.0
_unreachable: dict[str, str] = {}  # endpoint -> reason, so a run says "unreachable" once, not per file


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, read from the environment now (the library reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def hub_endpoint() -> str:
    # read now, not at import time, so HF_ENDPOINT set later (tests, mirrors) is honoured
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_unreachable(endpoint: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the hub cannot be reached (HF_HUB_OFFLINE, or no TCP connection within `timeout` s), or None.

    A few seconds' probe instead of huggingface_hub's own retries, which take minutes offline."""
    import socket
    from urllib.parse import urlsplit

    endpoint = endpoint or hub_endpoint()
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set and the file is not in the huggingface_hub cache"
    if endpoint in _unreachable:
        return _unreachable[endpoint]
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as err:
        _unreachable[endpoint] = f"cannot reach the Hugging Face hub at {endpoint} ({err.__class__.__name__}: {err})"
        return _unreachable[endpoint]


# -- names that become paths: one sanitiser, and the check that a path stays in its folder ------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def file_stem(text: str) -> str:
    """An injective, path-safe file name for any text: the text itself when it is safe, else a sanitised form plus
    ``~`` and a hash of the exact text (``~`` never occurs in a safe name, so ``x y``, ``x_y`` and ``x:y`` stay apart).

    The one sanitiser of cdc-bench: no name built from a dataset, codec, option or image can climb out of its folder
    (``..`` and ``/`` never survive).
    """
    text = str(text)
    safe = _UNSAFE.sub("_", text)
    if safe == text and text not in (".", "..") and text:
        return text
    return f"{safe}~{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def inside(folder: str | Path, path: str | Path) -> Path:
    """``folder / path``, checked to stay inside ``folder``; raises :class:`ConfigError` otherwise.

    The check is lexical (``..`` and absolute parts), so a folder that is itself a symbolic link still works.
    """
    import os

    root = Path(os.path.abspath(folder))
    joined = Path(os.path.normpath(root / path))
    if joined != root and root not in joined.parents:
        raise ConfigError(f"refusing to write {joined}: outside {root}")
    return joined
