"""The run manifest: what ran, with what, where and when; stored with every run.

Also the one place that finds the package versions, the git commit and the CPU model: the speed report's
environment (``cdc_bench.speed.environment``) reads them from here, so both records agree.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("cdc-bench", "torch", "torchvision", "numpy", "pillow", "pillow-heif", "pillow-jxl-plugin",
            "compressai", "pytorch-msssim", "lpips", "clean-fid", "piq", "pandas", "scipy")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(path: Path | None = None) -> dict[str, Any] | None:
    """The commit (and whether the tree is dirty) of the checkout this package runs from, if any."""
    path = path or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; ``platform`` elsewhere, which is often less precise)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"device": device, "cpu": cpu_model(),
                            "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(device)
    except ImportError:
        pass
    return info


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def build_manifest(run_id: str, settings: dict[str, Any], device: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "command": [Path(sys.argv[0]).name] + sys.argv[1:],
        "settings": settings,
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "git": git_commit(),
        **device_info(device),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


#: the distributions whose versions can change a stored number (codecs, metrics, image decoding)
NUMBER_PACKAGES = ("cdc-bench", "torch", "numpy", "compressai", "pillow", "pillow-heif", "pillow-jxl-plugin")
#: the codec libraries as Pillow reports them (``PIL.features.version``)
PILLOW_LIBRARIES = ("jpg", "libjpeg_turbo", "zlib", "webp", "libtiff", "jpg_2000")


def code_record() -> dict[str, Any]:
    """What must agree between a sweep's client and each Dask worker for their numbers to agree: the versions of
    :data:`NUMBER_PACKAGES`, Pillow's codec libraries (and libheif), the git commit and dirty state, and a digest of
    the package's own source files (a modified copy on a worker's ``PYTHONPATH`` has the same version)."""
    import hashlib

    libraries: dict[str, str | None] = {}
    try:
        from PIL import features

        for name in PILLOW_LIBRARIES:
            try:
                libraries[name] = features.version(name)
            except ValueError:  # a name this Pillow does not know
                libraries[name] = None
    except ImportError:
        pass
    try:
        import pillow_heif

        libraries["libheif"] = pillow_heif.libheif_version()
    except ImportError:
        libraries["libheif"] = None
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return {"packages": package_versions(NUMBER_PACKAGES), "libraries": libraries, "git": git_commit(),
            "source_sha256": digest.hexdigest()[:16], "python": sys.version.split()[0]}


def record_differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Each difference between two :func:`code_record` s, as ``what: here X, there Y``."""
    def flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in record.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flat(mine), flat(theirs or {})
    if mine.get("git") is None or (theirs or {}).get("git") is None:  # one side not a checkout: compare as a whole
        a["git"], b["git"] = mine.get("git"), (theirs or {}).get("git")
    return [f"{key}: here {a.get(key)}, there {b.get(key)}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]
