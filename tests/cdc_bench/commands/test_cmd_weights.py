"""``cdc-bench weights``: the listing, --verify, and --download from a local HTTP server (never the network)."""

from __future__ import annotations

import hashlib
import json
import http.server
import threading
from functools import partial

import pytest
from click.testing import CliRunner

import cdc_bench.metrics.inception  # noqa: F401 - registers the Inception file (the lead registers providers)
import cdc_bench.metrics.perceptual  # noqa: F401 - registers the LPIPS/DISTS files
from cdc_bench import weights as weights_registry
from cdc_bench.cli import main
from cdc_bench.weights import WeightFile


def _invoke(*args):
    return CliRunner().invoke(main, ["weights", *args], terminal_width=250)


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def served_file(tmp_path):
    """A file served over HTTP on 127.0.0.1 by a server started here."""
    root = tmp_path / "served"
    root.mkdir()
    payload = b"weights " * 1000
    (root / "model.pth").write_bytes(payload)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/model.pth", hashlib.sha256(payload).hexdigest()
    server.shutdown()


def test_lists_every_metric_file_with_url_sha_and_folder(empty_torch_home):
    result = _invoke()
    assert result.exit_code == 0, result.output
    for name in ("torchvision-alexnet", "torchvision-vgg16", "lpips-alex-v0.1", "inception-fid", "piq-dists"):
        assert name in result.output
    assert "torchvision-alexnet" in result.output.split("missing:")[-1]

    listing = {w["name"]: w for w in json.loads(_invoke("--json").output)}
    alexnet = listing["torchvision-alexnet"]
    assert alexnet["present"] is False
    assert alexnet["path"] == str(empty_torch_home / "alexnet-owt-7be5be79.pth")
    assert alexnet["url"] == "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
    assert alexnet["sha256"] == "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"
    assert "lpips" in alexnet["used_by"]
    assert listing["lpips-alex-v0.1"]["present"] is True  # ships inside the lpips package


def test_verify_checks_the_sha256(empty_torch_home):
    empty_torch_home.mkdir(parents=True)
    (empty_torch_home / "alexnet-owt-7be5be79.pth").write_bytes(b"not the real file")
    result = _invoke("--verify", "--json", "--only", "torchvision-alexnet,lpips-alex-v0.1")
    assert result.exit_code == 0, result.output
    listing = {w["name"]: w for w in json.loads(result.output)}
    assert listing["torchvision-alexnet"]["present"] and listing["torchvision-alexnet"]["sha256_ok"] is False
    assert listing["lpips-alex-v0.1"]["sha256_ok"] is True
    assert "MISMATCH" in _invoke("--verify", "--only", "torchvision-alexnet").output


def test_download_fetches_and_verifies(served_file, tmp_path, monkeypatch):
    url, sha = served_file
    target = tmp_path / "cache" / "model.pth"
    monkeypatch.setitem(weights_registry._registry, "test-model",
                        WeightFile("test-model", url, target, sha, used_by=["test"]))
    result = _invoke("--download", "--only", "test-model")
    assert result.exit_code == 0, result.output
    assert target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha


def test_download_with_wrong_sha_fails_and_keeps_nothing(served_file, tmp_path, monkeypatch):
    url, _ = served_file
    target = tmp_path / "cache" / "model.pth"
    monkeypatch.setitem(weights_registry._registry, "test-model",
                        WeightFile("test-model", url, target, "0" * 64, used_by=["test"]))
    result = _invoke("--download", "--only", "test-model")
    assert result.exit_code == 1
    assert "expected" in result.output and str(target).replace(" ", "")[:15] in result.output.replace("\n", "")
    assert not target.exists()


def test_unknown_name_is_a_usage_error():
    result = _invoke("--only", "no-such-weight")
    assert result.exit_code == 2 and "no-such-weight" in result.output
