"""Butteraugli through Google's ``butteraugli`` program (Debian/Ubuntu package ``butteraugli``).

Which Butteraugli: Google's standalone release (github.com/google/butteraugli, Debian version 0~20170116),
whose command prints the maximum of the distance map. libjxl's newer ``butteraugli_main`` (it also prints a
3-norm) is not in Debian's ``libjxl-tools`` 0.7, so values here are the 2017 release's and are not comparable
with papers that ran libjxl's. Both images go to the program as lossless PNG in a temporary folder; the
program reads them as sRGB. 0 for identical images; below ~1 is "good" in the authors' scale.

Why a subprocess and not a library: no PyPI package wraps Butteraugli for numpy images.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import MetricError
from . import MetricInfo

PROGRAM = "butteraugli"
INSTALL = "apt-get install butteraugli (Debian/Ubuntu)"


def program() -> str | None:
    """Path of the butteraugli program, or None."""
    return shutil.which(PROGRAM)


def missing() -> tuple[str, str] | None:
    """``(what, fix)`` when the program is absent (the pre-flight table's row)."""
    return None if program() else (f"program {PROGRAM} is not on PATH", INSTALL)


def butteraugli(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """Butteraugli max-norm distance of the reconstruction from the original."""
    from PIL import Image

    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    exe = program()
    if exe is None:
        raise MetricError(f"metric butteraugli needs the program {PROGRAM}: {INSTALL}")
    with tempfile.TemporaryDirectory(prefix="cdc-bench-butteraugli-") as folder:
        paths = [Path(folder) / "original.png", Path(folder) / "recon.png"]
        for path, image in zip(paths, (original, recon)):
            Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB").save(path, compress_level=1)
        done = subprocess.run([exe, *map(str, paths)], capture_output=True, text=True, timeout=600)
    try:
        return float(done.stdout.split()[0])
    except (IndexError, ValueError):
        raise MetricError(f"{PROGRAM} failed (exit {done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()[:300]}") from None


BUTTERAUGLI = MetricInfo("butteraugli", "butteraugli", lower_better=True, label="Butteraugli (max)",
                         compute=butteraugli, precision=3, range=(0.0, None), check=missing)
