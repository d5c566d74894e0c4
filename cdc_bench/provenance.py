"""Provenance: what ran, with what, where and when.

:func:`provenance` is the one record of the environment (versions, git commit, machine, device, time); the run
manifest (:func:`build_manifest`, stored with every run) and the speed report's environment
(:mod:`cdc_bench.speed.environment`) are that record plus their own fields, under the same field names.
:func:`timestamp` is the one time format: ISO 8601 in UTC with its offset.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
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


def timestamp() -> str:
    """Now, as every record of cdc-bench writes it: ``2026-12-02T01:23:45+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def device_name(device: str) -> str:
    """A name that identifies the hardware: the GPU's name on CUDA, the CPU model otherwise."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def provenance(device: str, packages: tuple[str, ...] = PACKAGES) -> dict[str, Any]:
    """The environment a number was measured in: the one record the run manifest and the speed report share."""
    from . import __version__

    record: dict[str, Any] = {
        "cdc_bench": __version__,
        "versions": package_versions(packages),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "git": git_commit(),
        **device_info(str(device)),
        "device_name": device_name(str(device)) if not str(device).startswith("cuda") else None,
        "created": timestamp(),
    }
    if record["device_name"] is None:
        record["device_name"] = record.get("gpu") or cpu_model()
    return record


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def build_manifest(run_id: str, settings: dict[str, Any], device: str) -> dict[str, Any]:
    record = provenance(device)
    return {"run_id": run_id, "command": [Path(sys.argv[0]).name] + sys.argv[1:], "settings": settings, **record,
            "started_at": record["created"]}
