"""Fixtures for tests of cdc_bench's own modules: a local HTTP server for download tests."""

from __future__ import annotations

import http.server
import threading
from functools import partial
from pathlib import Path

import pytest


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path):
    """Serves tmp_path/served on 127.0.0.1 (a free port); yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def td():
    """The shared results fixtures of the figure and table tests (``analysis/results_testdata.py``)."""
    import importlib.util

    path = Path(__file__).parent / "analysis" / "results_testdata.py"
    spec = importlib.util.spec_from_file_location("results_testdata", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kill_group():
    """SIGKILL each process's whole session (a Dask scheduler or worker started with ``start_new_session`` and its
    children) and reap it: the cleanup of the tests that start real Dask processes."""
    import os
    import signal

    def kill(*procs) -> None:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(20)
    return kill
