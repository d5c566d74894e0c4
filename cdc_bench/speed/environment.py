"""What a speed figure depends on: device, dtype, threads, library versions, git commit, machine load."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def git_commit(where: Path = PACKAGE_DIR) -> tuple[str | None, bool | None]:
    """The commit of the checkout holding the package and whether it has uncommitted changes (None: not git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """A name that identifies the hardware: the GPU's name on CUDA, the CPU model otherwise."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: other work on the machine slows the benchmark, so it is recorded."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


VERSIONED = ("torch", "torchvision", "numpy", "compressai", "pillow", "scipy")


def package_versions(names: tuple[str, ...] = VERSIONED) -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def environment(device: str) -> dict[str, Any]:
    import numpy
    import torch

    commit, dirty = git_commit()
    env: dict[str, Any] = {
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cdc_bench": __version__,
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "packages": package_versions(),
    }
    if str(device).startswith("cuda"):
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env
