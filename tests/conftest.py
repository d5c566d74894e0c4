"""Shared test fixtures: where the team's reference data lives, and small images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CDC_BENCH_SHARED", REPO.parent / "shared")).resolve()


#: Under CI (``CI=true``) or with ``CDC_BENCH_REQUIRE_SHARED=1`` the calibration suite cannot go green by skipping:
#: missing reference data is a failure.
REQUIRE_SHARED = os.environ.get("CDC_BENCH_REQUIRE_SHARED", "1" if os.environ.get("CI") == "true" else "0") == "1"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        message = f"team reference data not found at {SHARED} (set CDC_BENCH_SHARED)"
        if REQUIRE_SHARED:
            pytest.fail(message + "; CI and CDC_BENCH_REQUIRE_SHARED=1 require it", pytrace=False)
        pytest.skip(message)
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


#: What a child process run by ``decode_capped`` does: build the codec, cap its address space at what it maps now
#: plus the cap, decode the stream, and report the error (or the image) and whether a network was loaded.
_CAPPED_DECODE = """
import json, resource, sys
from cdc_bench.codecs.registry import create_codec
from cdc_bench.errors import CdcBenchError
name, options, path, cap = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
codec = create_codec(name, options)
codec.require_available()  # imports torch, compressai, ... before the cap: mapping their libraries is not the test
mapped = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (mapped + cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    image = codec.decode(open(path, "rb").read())
    out = {"image": list(image.shape)}
except CdcBenchError as err:
    out = {"error": type(err).__name__, "message": str(err)}
out["loaded"] = codec._loaded is not None
print(json.dumps(out))
"""


@pytest.fixture
def decode_capped(tmp_path):
    """``decode_capped(codec, options, data, cap=2 GiB)``: decode ``data`` in a child process whose address space
    may grow by ``cap`` bytes at most (a decode that allocates gigabytes dies there, not in the test run);
    returns the child's report: ``{"error", "message"}`` or ``{"image"}``, and ``"loaded"`` (a network was)."""
    import json
    import subprocess
    import sys

    def run(codec: str, options: dict, data: bytes, cap: int = 2 << 30) -> dict:
        path = tmp_path / "stream.bin"
        path.write_bytes(data)
        out = subprocess.run([sys.executable, "-c", _CAPPED_DECODE, codec, json.dumps(options), str(path),
                              str(cap)], capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, f"the capped decode died ({out.returncode}): {out.stderr[-3000:]}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture(scope="session")
def decode_memory():
    """``benchmarks/decode_memory.py`` as a module: its ``measure`` decodes in a child process and reads the
    peak resident set (the tests check the declared decode costs against a fresh measurement)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("decode_memory", REPO / "benchmarks" / "decode_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
