"""What a speed figure depends on: the provenance record (device, versions, git commit) plus dtype and threads."""

from __future__ import annotations

import sys
from typing import Any

from ..provenance import provenance

#: the libraries a speed figure depends on
VERSIONED = ("torch", "torchvision", "numpy", "compressai", "pillow", "scipy")


def environment(device: str) -> dict[str, Any]:
    """:func:`cdc_bench.provenance.provenance` with the speed report's own fields (threads, torch, CUDA, argv)."""
    import numpy
    import torch

    env = provenance(device, VERSIONED)
    env.update(threads=torch.get_num_threads(), torch=torch.__version__, numpy=numpy.__version__,
               argv=sys.argv[1:])
    if str(device).startswith("cuda"):
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env
