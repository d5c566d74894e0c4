"""What a speed figure depends on: device, dtype, threads, library versions, git commit, machine load."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from ..provenance import cpu_model, git_commit, package_versions


def device_name(device: str) -> str:
    """A name that identifies the hardware: the GPU's name on CUDA, the CPU model otherwise."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


#: the libraries a speed figure depends on
VERSIONED = ("torch", "torchvision", "numpy", "compressai", "pillow", "scipy")


def environment(device: str) -> dict[str, Any]:
    import numpy
    import torch

    git = git_commit() or {}
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
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "packages": package_versions(VERSIONED),
    }
    if str(device).startswith("cuda"):
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env
