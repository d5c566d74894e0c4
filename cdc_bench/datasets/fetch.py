"""Downloading a manifest dataset: per-file (Kodak) or one verified zip extracted safely (CLIC, DIV2K)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..download import DownloadError, download
from .archive import UnsafeArchiveError, extract_images, extraction_limits
from .core import EXTRACTION_RECORD, DatasetError, DatasetStatus, ManifestDataset

DOWNLOADS = ".downloads"  # under the data root: where a zip is fetched to, and where a user may drop one


def archive_path(dataset: ManifestDataset) -> Path:
    assert dataset.manifest.archive is not None
    return dataset.data_root / DOWNLOADS / dataset.manifest.archive.filename


def how_to_fix(dataset: ManifestDataset, status: DatasetStatus, *, offline_only: bool = False) -> str:
    """What to run, or which URL to fetch by hand and where to put it (the offline route)."""
    manifest = dataset.manifest
    if dataset.data_root.name == manifest.name and not dataset.where.exists():
        # --data-root <...>/kodak: the dataset's own folder, not the folder that holds the datasets
        return (f"Fix: --data-root {dataset.data_root} is the {manifest.name} folder itself; datasets live in "
                f"<data-root>/{manifest.name}, so pass the folder above it: --data-root {dataset.data_root.parent}")
    command = f"cdc-bench download {manifest.name} --data-root {dataset.data_root}"
    run = "" if offline_only else f"Fix: run `{command}` (or add --download to `cdc-bench run`). "
    if manifest.archive is not None:
        archive = manifest.archive
        size = f", {archive.bytes / 1e6:.0f} MB" if archive.bytes else ""
        placed = archive_path(dataset)
        if placed.is_file():
            return (f"Fix: {placed} is already there: run `{command}` to check its sha256 and extract it "
                    f"(or unzip its images into {dataset.where})")
        return (f"{run}Offline: fetch {archive.url} "
                f"(sha256 {archive.sha256}{size}) elsewhere, put it at {archive_path(dataset)} and run the same "
                f"command, or unzip its images into {dataset.where}")
    names = set(status.missing) | {name for name, _ in status.corrupted}
    urls = [f.url for f in manifest.files or () if f.name in names and f.url] or [manifest.homepage]
    shown = "\n  ".join(urls[:4])
    if len(urls) > 4:
        listed = f" (all URLs are in {manifest.source_path})" if manifest.source_path else ""
        shown += f"\n  ... {len(urls)} files in all{listed}"
    return (f"{run}Offline: download\n  {shown}\n"
            f"into {dataset.where}")


def fetch_dataset(dataset: ManifestDataset, *, progress: bool = True) -> DatasetStatus:
    """Bring ``dataset`` to complete: download missing or damaged files, each verified by sha256.

    Raises :class:`DatasetError` naming the URL and the folder when a download fails (offline) or a checksum
    does not match.
    """
    # sha256 of what is already there is checked too: a download command should leave a verified copy behind.
    status = dataset.status(verify=True)
    if status.complete:
        return status
    if dataset.manifest.archive is not None:
        _fetch_archive(dataset, progress)
    else:
        _fetch_files(dataset, status, progress)
    status = dataset.status(verify=True)
    if not status.complete:
        raise DatasetError(f"{status.summary()}\nafter downloading; {how_to_fix(dataset, status)}")
    return status


def _fetch_files(dataset: ManifestDataset, status: DatasetStatus, progress: bool) -> None:
    bad = set(status.missing) | {name for name, _ in status.corrupted}
    for entry in dataset.manifest.files or ():
        if entry.name not in bad:
            continue
        assert entry.url is not None  # the manifest loader requires a url per file when there is no archive
        try:
            download(entry.url, dataset.where / entry.name, entry.sha256, what=f"{dataset.name}/{entry.name}",
                     progress=progress, size=entry.bytes)
        except DownloadError as err:
            raise DatasetError(f"{dataset.name}: {err}.\n"
                               f"{how_to_fix(dataset, dataset.status(), offline_only=True)}") from None


def _fetch_archive(dataset: ManifestDataset, progress: bool) -> None:
    archive = dataset.manifest.archive
    assert archive is not None
    zip_path = archive_path(dataset)
    try:
        download(archive.url, zip_path, archive.sha256, what=f"{dataset.name} ({archive.filename})",
                 progress=progress, size=archive.bytes)
    except DownloadError as err:
        raise DatasetError(f"{dataset.name}: {err}, then run `cdc-bench download {dataset.name} --data-root "
                           f"{dataset.data_root}` to check and extract it; or unzip its images into "
                           f"{dataset.where}") from None
    files = dataset.manifest.files or ()
    expected = sum(f.bytes for f in files) if files and all(f.bytes for f in files) else archive.bytes
    max_bytes, max_members = extraction_limits(expected or zip_path.stat().st_size, dataset.manifest.count)
    try:
        digests = extract_images(zip_path, dataset.where, max_bytes=max_bytes, max_members=max_members)
    except UnsafeArchiveError as err:
        raise DatasetError(f"{dataset.name}: {err}") from None
    if len(digests) != dataset.manifest.count:
        raise DatasetError(f"{dataset.name}: {archive.filename} held {len(digests)} images but the manifest "
                           f"expects {dataset.manifest.count}; the extracted files were kept at {dataset.where}")
    listed = {f.name: f for f in dataset.manifest.files or ()}
    if listed and set(listed) != set(digests):
        raise DatasetError(f"{dataset.name}: {archive.filename} does not hold the listed files "
                           f"(first differences: {sorted(set(listed) ^ set(digests))[:5]})")
    differ = sorted(n for n, sha in digests.items() if n in listed and listed[n].sha256 not in (None, sha))
    if differ:
        # The zip matched its sha256, so its members are authentic: the manifest's per-file value is what is wrong.
        warnings.warn(f"{dataset.name}: {len(differ)} extracted files differ from the manifest's per-file sha256 "
                      f"({', '.join(differ[:5])}) although {archive.filename} matched its sha256; the values "
                      "from the verified zip are recorded and used from now on", stacklevel=2)
    record = {"archive": archive.url, "archive_sha256": archive.sha256,
              "files": {n: {"sha256": sha, "bytes": (dataset.where / n).stat().st_size}
                        for n, sha in sorted(digests.items())}}
    (dataset.where / EXTRACTION_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    zip_path.unlink(missing_ok=True)  # the images are verified and recorded; the zip would only double the disk use
