"""``cdc_bench.download``: a download that runs past its expected size is stopped; the error classes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_longer_than_the_manifest_size_is_stopped(server, tmp_path: Path):
    from cdc_bench.download import ChecksumMismatch, download

    served, base = server
    (served / "big.bin").write_bytes(b"x" * 5000)
    dest = tmp_path / "out" / "big.bin"
    with pytest.raises(ChecksumMismatch, match="longer than the expected 1,000 bytes"):
        download(f"{base}/big.bin", dest, sha(b"x" * 1000), size=1000, progress=False)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))
    assert download(f"{base}/big.bin", dest, sha(b"x" * 5000), size=5000, progress=False) == dest


def test_errors_are_the_shared_hierarchy_and_old_names_still_import():
    from cdc_bench import datasets, download, errors
    from cdc_bench.datasets import images
    from cdc_bench.datasets import archive, manifest

    assert images.ImageReadError is errors.ImageReadError
    assert datasets.DatasetError is errors.DatasetError
    assert download.DownloadError is errors.DownloadError and download.ChecksumMismatch is errors.ChecksumMismatch
    assert issubclass(archive.UnsafeArchiveError, errors.DatasetError)
    assert issubclass(manifest.ManifestError, errors.DatasetError) and issubclass(manifest.ManifestError, ValueError)
    assert issubclass(images.ImageOptionError, errors.ConfigError) and images.ImageOptionError.exit_code == 2
    assert datasets.UnknownNameError is errors.UnknownNameError
