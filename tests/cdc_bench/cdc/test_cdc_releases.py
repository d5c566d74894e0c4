"""Released CDC checkpoints: names, weights registry, download through a fake Hugging Face hub, offline errors."""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cdc_bench.cdc import releases
from cdc_bench.codecs.base import CodecError
from cdc_bench.sweep.catalog import all_weights
from cdc_bench.weights import WeightsMissing

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves /rhyang/CDC_params/resolve/main/<path> like the hub does (no xet), and counts requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, body: bool):
                hub.requests.append((self.command, self.path))
                prefix = f"/{releases.REPO_ID}/resolve/{releases.REVISION}/"
                data = hub.files.get(self.path[len(prefix):]) if self.path.startswith(prefix) else None
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):  # noqa: N802
                self._serve(body=False)

            def do_GET(self):  # noqa: N802
                self._serve(body=True)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """An empty, private Hugging Face cache; offline mode off; no token."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_TOKEN", "")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    return tmp_path


def test_release_table_matches_spec():
    assert releases.lambdas("x") == (0.0032, 0.0064, 0.0128, 0.0512, 0.1024, 0.2048)
    assert releases.lambdas("eps") == (0.0128, 0.0256, 0.0512, 0.1024, 0.2048, 0.3072)
    first = releases.find_release("x", 0.0032)
    assert first.url == ("https://huggingface.co/rhyang/CDC_params/resolve/main/x_param/"
                         "image-l2-use_weight5-vimeo-d64-t8193-b0.0032-x-cosine-01-float32-aux0.0_2.pt")
    assert not first.lpips and releases.find_release("x", 0.2048).lpips
    eps = releases.find_release("eps", 0.1024)
    assert eps.filename == "big-l1-vimeo-d64-t20000-b0.1024-vbrFalse-noise-linear-aux0.9lpips_0.pt"
    assert releases.find_release("eps", 0.0128).filename.endswith("-aux-1.0_0_ckpt.pt")


def test_unknown_lambda_lists_valid_ones():
    with pytest.raises(CodecError, match="0.0032, 0.0064"):
        releases.find_release("x", 0.5)


def test_model_id_round_trip():
    for variant in ("x", "eps"):
        for release in releases.RELEASES[variant]:
            assert releases.release_from_model_id(release.model_id) == release
    assert releases.release_from_model_id("file:abc") is None
    assert releases.release_from_model_id("released:x:0.7") is None


def test_registered_in_weights_registry():
    names = {w.name: w for w in all_weights()}
    assert {"cdc-x-b0.0032", "cdc-eps-b0.3072"} <= set(names)
    assert names["cdc-x-b0.0512"].used_by == ["cdc"]
    assert names["cdc-eps-b0.0128"].used_by == ["cdc-eps"]


def test_download_through_fake_hub_into_hf_cache(hub_env, monkeypatch):
    release = releases.find_release("x", 0.0064)
    payload = b"not really a checkpoint" * 100
    with FakeHub({release.hub_path: payload}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        path = releases.release_file(release)
        assert path.read_bytes() == payload
        assert str(path).startswith(str(hub_env / "hf")), path  # huggingface_hub's standard cache layout
        assert "models--rhyang--CDC_params" in str(path)
        assert any(cmd == "GET" for cmd, _ in hub.requests)
        # second use: found in the cache without asking the hub for the file body again
        gets = sum(cmd == "GET" for cmd, _ in hub.requests)
        assert releases.release_file(release, allow_download=False) == path
        assert sum(cmd == "GET" for cmd, _ in hub.requests) == gets


def test_missing_on_hub_names_file_url_and_folder(hub_env, monkeypatch):
    release = releases.find_release("eps", 0.2048)
    with FakeHub({}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(WeightsMissing) as info:
            releases.release_file(release)
    message = str(info.value)
    assert release.url in message
    assert str(releases.manual_path(release)) in message
    assert release.weight_name in message


def test_offline_error_and_manual_placement(hub_env, monkeypatch):
    release = releases.find_release("x", 0.1024)
    # huggingface_hub's offline mode, as on a machine without network (a closed port would work too, but
    # huggingface_hub retries connection errors with back-off for ~20 s)
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsMissing) as info:
        releases.release_file(release)
    assert release.url in str(info.value) and str(releases.manual_path(release)) in str(info.value)
    with pytest.raises(WeightsMissing, match="missing"):
        releases.release_file(release, allow_download=False)
    # the folder the message names is honoured
    target = releases.manual_path(release)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"placed by hand")
    assert releases.release_file(release, allow_download=False) == target


def test_unreachable_hub_is_detected_in_seconds_and_names_the_ways_on(hub_env, monkeypatch):
    import socket
    import time

    with socket.socket() as sock:  # a localhost port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    from cdc_bench import download

    monkeypatch.setattr(download, "_unreachable", {})
    start = time.monotonic()
    with pytest.raises(WeightsMissing) as first:
        releases.release_file(releases.find_release("x", 0.0032))
    with pytest.raises(WeightsMissing) as second:
        releases.release_file(releases.find_release("x", 0.0064))
    assert time.monotonic() - start < 10  # huggingface_hub's own retries take minutes
    message = str(first.value)
    assert "cannot reach the Hugging Face hub" in message
    for way in ("HF_HUB_OFFLINE=1", "-o cdc.checkpoint=PATH", "-o cdc.weights=random",
                str(releases.manual_path(releases.find_release("x", 0.0032)))):
        assert way in message
    assert "cannot reach" in str(second.value) and "ways on" not in str(second.value)  # said once


def test_hf_hub_offline_names_the_ways_on_without_probing(hub_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(__import__("cdc_bench.download", fromlist=["x"]), "_unreachable", {})

    def no_probe(*args, **kwargs):
        raise AssertionError("probed the network although HF_HUB_OFFLINE is set")

    monkeypatch.setattr("socket.create_connection", no_probe)
    with pytest.raises(WeightsMissing, match="HF_HUB_OFFLINE is set.*ways on"):
        releases.release_file(releases.find_release("eps", 0.0128))
