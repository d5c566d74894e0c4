"""pytest-benchmark suite, outside the default test run (``testpaths = tests``).

    pytest benchmarks/ --benchmark-autosave                                  # save a baseline (.benchmarks/)
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:10%  # fail on a >10% slower median

Files named ``bench_*.py`` here are collected as test modules (their functions are still ``test_*``), so the
suite is run only when asked for by path and never slows down ``pytest``.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-device", default="cpu", help="device for codec benchmarks: cpu, cuda, cuda:N")


def pytest_collect_file(file_path, parent):
    # A file named on the command line is already collected by pytest itself; collecting it here too would run
    # every benchmark twice.
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session")
def bench_device(request: pytest.FixtureRequest) -> str:
    device = request.config.getoption("--bench-device")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip(f"--bench-device {device}: no CUDA device here")
    return device
