"""The prepared CDC benchmark scripts import cleanly and explain themselves (the GPU one cannot run here)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("script", ["gpu_check.py", "cdc_fast_paths.py"])
def test_help(script):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "usage" in proc.stdout.lower(), proc.stderr


def test_gpu_check_refuses_without_cuda(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run benchmarks/gpu_check.py itself")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out",
                           str(tmp_path / "g.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr
