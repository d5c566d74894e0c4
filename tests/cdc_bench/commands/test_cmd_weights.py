"""``cdc-bench weights``: the listing, --verify, --only, --download from a local HTTP server (never the network), and
the pinning of FID's Inception file (a planted file is refused)."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from cdc_bench import weights as weights_registry
from cdc_bench.cli import main
from cdc_bench.metrics import inception
from cdc_bench.weights import WeightFile


def _invoke(*args):
    return CliRunner().invoke(main, ["weights", *args], terminal_width=250)


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def declare():
    """Register a weight file for one test and take it away afterwards."""
    names = []

    def add(weight):
        names.append(weight.name)
        return weights_registry.register_weight(weight)

    yield add
    for name in names:
        weights_registry.WEIGHTS.unregister(name)


@pytest.fixture
def served_file(server):
    """A file served over HTTP on 127.0.0.1 by the conftest's server."""
    folder, base = server
    payload = b"weights " * 1000
    (folder / "model.pth").write_bytes(payload)
    return f"{base}/model.pth", hashlib.sha256(payload).hexdigest()


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
    assert result.exit_code == 1, result.output  # a mismatch is a failure, not just a mark in the listing
    listing = {w["name"]: w for w in json.loads(result.output)}
    assert listing["torchvision-alexnet"]["present"] and listing["torchvision-alexnet"]["sha256_ok"] is False
    assert listing["lpips-alex-v0.1"]["sha256_ok"] is True
    table = _invoke("--verify", "--only", "torchvision-alexnet")
    assert table.exit_code == 1 and "MISMATCH" in table.output
    assert _invoke("--verify", "--only", "lpips-alex-v0.1").exit_code == 0


def test_download_fetches_and_verifies(served_file, tmp_path, declare):
    url, sha = served_file
    target = tmp_path / "cache" / "model.pth"
    declare(WeightFile("test-model", url, target, sha, used_by=["test"]))
    result = _invoke("--download", "--only", "test-model")
    assert result.exit_code == 0, result.output
    assert target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha


def test_download_with_wrong_sha_fails_and_keeps_nothing(served_file, tmp_path, declare):
    url, _ = served_file
    target = tmp_path / "cache" / "model.pth"
    declare(WeightFile("test-model", url, target, "0" * 64, used_by=["test"]))
    result = _invoke("--download", "--only", "test-model")
    assert result.exit_code == 1
    assert "expected" in result.output and str(target).replace(" ", "")[:15] in result.output.replace("\n", "")
    assert not target.exists()


def test_unknown_name_is_a_usage_error():
    result = _invoke("--only", "no-such-weight")
    assert result.exit_code == 2 and "no-such-weight" in result.output


def test_only_takes_codec_and_metric_names(empty_torch_home):
    listing = {w["name"] for w in json.loads(_invoke("--json", "--only", "lpips").output)}
    assert listing == {"torchvision-alexnet", "lpips-alex-v0.1"}
    listing = {w["name"] for w in json.loads(_invoke("--json", "--only", "hific,dists").output)}
    assert {"hific/hific-lo.metagraph", "hific/hific-mi.metagraph", "hific/hific-hi.metagraph",
            "torchvision-vgg16", "piq-dists"} <= listing
    result = _invoke("--only", "lpipz")
    assert result.exit_code == 2 and "Did you mean lpips" in result.output


def test_planted_inception_file_fails_verify_and_is_never_used(tmp_path, monkeypatch):
    # clean-fid's cache folder is world-writable /tmp by default: anyone can put a file there.
    monkeypatch.setenv("CDC_BENCH_CLEANFID_DIR", str(tmp_path))
    (tmp_path / inception.CLEANFID_FILE).write_bytes(b"planted: not the Inception network")
    result = _invoke("--verify", "--only", "inception-fid")
    assert result.exit_code == 1 and "MISMATCH" in result.output
    inception.load_inception.cache_clear()
    try:
        extractor = inception.load_inception("cpu")  # falls back to fid-helper's verified file
    finally:
        inception.load_inception.cache_clear()
    assert extractor.path == inception.fidhelper_path()
    assert extractor.name == f"{inception.EXTRACTOR_FIDHELPER} sha256:{inception.FIDHELPER_SHA256[:12]}"


def test_inception_fails_clearly_when_no_file_verifies(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CLEANFID_DIR", str(tmp_path))
    (tmp_path / inception.CLEANFID_FILE).write_bytes(b"planted")
    monkeypatch.setattr(inception.FIDHELPER_WEIGHT, "sha256", "0" * 64)  # as if the packaged file were altered
    inception.load_inception.cache_clear()
    with pytest.raises(weights_registry.WeightChecksumMismatch) as err:
        inception.load_inception("cpu")
    inception.load_inception.cache_clear()
    message = str(err.value)
    assert str(tmp_path / inception.CLEANFID_FILE) in message and str(inception.fidhelper_path()) in message
    assert "--download --only inception-fid" in message


def test_packaged_fid_helper_file_is_pinned():
    assert weights_registry.file_sha256(inception.fidhelper_path()) == inception.FIDHELPER_SHA256
    assert inception.FIDHELPER_WEIGHT.verify() is True


def test_locate_never_mutates_and_paths_follow_the_environment(tmp_path, monkeypatch):
    weight = weights_registry.get_weight("torchvision-alexnet")
    before = dict(vars(weight))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "a"))
    assert weight.locate() is None and weight.path == tmp_path / "a" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "b"))
    assert weight.path.parent == tmp_path / "b" / "hub" / "checkpoints"
    weight.missing_message(), weight.verify(), weight.present()
    assert dict(vars(weight)) == before


def test_weight_files_are_found_through_codec_and_metric_declarations():
    """No list of plug-in modules: a fresh interpreter finds the files of a codec and of a metric by name."""
    import subprocess
    import sys

    code = ("from cdc_bench.sweep.catalog import all_weights; import cdc_bench.weights as w; "
            "assert not hasattr(w, '_providers'); found = {f.name: f for f in all_weights()}; "
            "print(found['hific/hific-mi.metagraph'].used_by, found['lpips-vgg-v0.1'].used_by)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "['hific'] ['lpips-vgg']" in done.stdout


def test_prefix_checksums_and_search_places(tmp_path, declare):
    payload = b"checkpoint bytes"
    elsewhere = tmp_path / "other-cache" / "model.pt"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(payload)
    import hashlib as _h

    digest = _h.sha256(payload).hexdigest()
    weight = declare(WeightFile("test-prefix", "http://127.0.0.1:9/model.pt", lambda: tmp_path / "main" / "model.pt",
                                digest[:8], used_by=["test"], search=lambda: [elsewhere]))
    assert weight.locate() == elsewhere and weight.verify() is True
    assert weight.ensure(allow_download=False) == elsewhere
    elsewhere.write_bytes(b"changed")
    assert weight.verify() is False
    with pytest.raises(weights_registry.WeightChecksumMismatch):
        weight.ensure(allow_download=False)


def test_download_reports_a_present_file_that_fails_its_sha256(tmp_path, declare):
    target = tmp_path / "cache" / "model.pth"
    target.parent.mkdir()
    target.write_bytes(b"tampered")
    declare(WeightFile("test-model", "http://127.0.0.1:9/model.pth", target, "0" * 64, used_by=["test"]))
    result = _invoke("--download", "--only", "test-model")
    assert result.exit_code == 1 and "fails its sha256" in result.output.replace("\n", "")


def test_import_installs_carried_in_trunks_only_when_their_sha256_matches(tmp_path, monkeypatch, empty_torch_home):
    """`weights --import DIR` on files the test makes: torchvision's AlexNet architecture with random weights saved
    under its expected name, its sha256 pinned in a table the test controls (the real trunk cannot be downloaded
    here). VGG16's 550 MB stand-in is left out to keep the test fast: it takes the same path."""
    import torch
    import torchvision

    from cdc_bench.download import sha256_of
    from cdc_bench.metrics import perceptual

    carried = tmp_path / "usb" / "trunks"
    carried.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), carried / "alexnet-owt-7be5be79.pth")
    (carried / "dists_weights.pt").write_bytes(b"not the DISTS weights")
    monkeypatch.setattr(perceptual.ALEXNET, "sha256", sha256_of(carried / "alexnet-owt-7be5be79.pth"))
    monkeypatch.setattr(perceptual.DISTS_ALPHA_BETA, "sha256", hashlib.sha256(b"the real file").hexdigest())

    res = _invoke("--import", str(tmp_path / "usb"), "--only", "torchvision-alexnet,piq-dists,torchvision-vgg16")
    assert res.exit_code == 1, res.output   # one file was refused
    installed = empty_torch_home / "alexnet-owt-7be5be79.pth"
    assert installed.is_file() and sha256_of(installed) == perceptual.ALEXNET.sha256
    assert "torchvision-alexnet: imported" in res.output
    assert "piq-dists: sha256 mismatch" in res.output and not (empty_torch_home / "dists_weights.pt").exists()
    assert "torchvision-vgg16: not in folder: expected a file named vgg16-397923af.pth" in res.output
    listed = json.loads(_invoke("--only", "torchvision-alexnet", "--verify", "--json").output)
    assert listed[0]["present"] and listed[0]["sha256_ok"] is True
    again = _invoke("--import", str(tmp_path / "usb"), "--only", "torchvision-alexnet")
    assert again.exit_code == 0 and "already present" in again.output
