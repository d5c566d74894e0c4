"""Shared test fixtures: where the team's reference data lives, and small images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CDC_BENCH_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"team reference data not found at {SHARED} (set CDC_BENCH_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def kodak_dir(shared_dir: Path) -> Path:
    return shared_dir / "datasets" / "kodak"


@pytest.fixture(scope="session")
def kodim23(kodak_dir: Path) -> np.ndarray:
    from cdc_bench.datasets.images import read_image

    return read_image(kodak_dir / "kodim23.png")[0]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep tests away from the user's real caches."""
    cache = tmp_path_factory.getbasetemp() / "cdc-bench-cache"
    monkeypatch.setenv("CDC_BENCH_CACHE", str(cache))
