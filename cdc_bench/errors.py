"""Every error cdc-bench raises on purpose, in one hierarchy.

The command line catches :class:`CdcBenchError` and prints its message (exit code 2 for bad input, 1 otherwise)
instead of a traceback. The runner records an item's error in its row and tells item errors (a corrupt image, an
option out of range: rerunning gives the same result) from environment errors (a full disk, a killed worker:
rerunning may succeed), which are retried by default on the next run.
"""

from __future__ import annotations

import difflib
import errno


class CdcBenchError(Exception):
    """Base of the errors a user can act on; the message says what happened and what to do."""

    exit_code = 1


class ConfigError(CdcBenchError):
    """Bad input from the user: an option, a rate point, a command-line value."""

    exit_code = 2


class UnknownNameError(ConfigError, KeyError):
    """An unknown codec, metric, dataset or weight name; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        self.message = f"unknown {kind} {name!r}.{hint} Valid names: {', '.join(valid) or 'none'}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class CodecError(CdcBenchError):
    """An encode or decode failed for a reason the user can act on."""


class CodecConfigError(ConfigError, CodecError):
    """A codec option or rate point is invalid; the message names the valid range."""


class CodecUnavailable(CodecError):
    """The codec cannot run on this machine; ``fix`` says what to install or download."""

    def __init__(self, reason: str, fix: str = ""):
        super().__init__(reason + (f" Fix: {fix}" if fix else ""))
        self.reason = reason
        self.fix = fix


class BitstreamError(CodecError):
    """The bytes handed to a decoder are truncated, corrupted or not from this codec."""


class ImageReadError(CdcBenchError):
    """An image file could not be read (missing, unreadable, truncated, too large)."""


class DatasetError(CdcBenchError):
    """A dataset is missing, incomplete or fails its checksums."""


class DownloadError(CdcBenchError):
    """A file could not be downloaded (offline, HTTP error); the message names the URL and the destination."""


class ChecksumMismatch(DownloadError):
    """A file's sha256 differs from the one it must have."""


class WeightsMissing(DownloadError):
    """A weight file is absent or fails its checksum; the message names the file, its URL and the folder."""


class MetricError(CdcBenchError):
    """A metric cannot run here (a program it calls is missing) or its tool failed on the inputs."""


class StoreError(CdcBenchError):
    """The results store cannot be opened or written (corrupt, read-only, full); the message names the path."""


class EnvironmentFault(CdcBenchError):
    """The environment failed, not the item (disk full, out of memory, worker killed): a rerun may succeed."""


#: errno values that mean "the machine", not "the item"
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENOMEM, errno.EMFILE,
                       errno.ENFILE}


def is_environment_error(exc: BaseException) -> bool:
    """True for failures a rerun may cure (they are retried by default); False for failures of the item itself."""
    if isinstance(exc, (EnvironmentFault, MemoryError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS
