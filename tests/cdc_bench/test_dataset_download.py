"""Dataset downloads against a local HTTP server on 127.0.0.1 (started here): per-file and zip datasets,
checksum mismatches, zip-slip, the offline message on a closed port, and `cdc-bench download`."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import stat
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cdc_bench.cli import main
from cdc_bench.datasets import DatasetError, dataset_from_manifest, get_dataset
from cdc_bench.datasets import manifest as manifest_module
from cdc_bench.datasets.archive import UnsafeArchiveError, extract_images
from cdc_bench.datasets.core import EXTRACTION_RECORD


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


def png_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def per_file_manifest(served: Path, base: str, n: int = 3) -> dict:
    files = []
    for i in range(n):
        data = png_bytes(i)
        (served / f"img{i}.png").write_bytes(data)
        files.append({"name": f"img{i}.png", "sha256": sha(data), "bytes": len(data), "url": f"{base}/img{i}.png"})
    return {"name": "tiny", "count": n, "homepage": base, "files": files}


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zip_manifest(served: Path, base: str, members: dict[str, bytes], count: int, files=None) -> dict:
    data = make_zip(members)
    (served / "tiny.zip").write_bytes(data)
    return {"name": "tinyzip", "count": count, "files": files,
            "archive": {"url": f"{base}/tiny.zip", "sha256": sha(data), "bytes": len(data)}}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed: connection refused


def test_per_file_download_then_verified(server, tmp_path: Path):
    served, base = server
    dataset = dataset_from_manifest(per_file_manifest(served, base), tmp_path / "data")
    with pytest.raises(DatasetError, match="tiny: not found"):
        dataset.images()
    status = dataset.fetch()
    assert status.complete and status.present == 3
    items = dataset.images(verify=True)
    assert [i.name for i in items] == ["img0", "img1", "img2"]
    assert all(i.path.read_bytes() == (served / i.path.name).read_bytes() for i in items)


def test_download_replaces_only_damaged_files(server, tmp_path: Path):
    served, base = server
    dataset = dataset_from_manifest(per_file_manifest(served, base), tmp_path / "data")
    dataset.fetch()
    good0 = (dataset.where / "img0.png").stat().st_mtime_ns
    (dataset.where / "img2.png").unlink()
    same_size = bytearray((served / "img1.png").read_bytes())
    same_size[-20] ^= 1
    (dataset.where / "img1.png").write_bytes(bytes(same_size))
    status = dataset.status(verify=True)
    assert status.missing == ["img2.png"] and status.corrupted == [("img1.png", "sha256 mismatch")]
    status = dataset.fetch()
    assert status.complete and status.verified
    assert (dataset.where / "img1.png").read_bytes() == (served / "img1.png").read_bytes()
    assert (dataset.where / "img0.png").stat().st_mtime_ns == good0  # a good file is not fetched again


def test_get_dataset_download_uses_shipped_manifests(server, tmp_path: Path, monkeypatch):
    served, base = server
    manifests = tmp_path / "checkout" / "datasets"  # looks like a source checkout: datasets/ beside pyproject.toml
    manifests.mkdir(parents=True)
    (manifests.parent / "pyproject.toml").write_text("")
    (manifests / "tiny.json").write_text(json.dumps(per_file_manifest(served, base)))
    monkeypatch.setattr(manifest_module, "MANIFEST_DIR", manifests)
    root = tmp_path / "data"
    with pytest.raises(DatasetError):
        get_dataset("tiny", root).images()
    assert len(get_dataset("tiny", root, download=True).images()) == 3

    (root / "tiny" / "img0.png").unlink()
    result = CliRunner().invoke(main, ["download", "tiny", "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "tiny: 3 of 3 images present" in result.output


def test_checksum_mismatch_is_rejected_and_not_kept(server, tmp_path: Path):
    served, base = server
    manifest = per_file_manifest(served, base)
    manifest["files"][1]["sha256"] = "0" * 64
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError) as err:
        dataset.fetch()
    message = str(err.value)
    assert "has sha256" in message and "expected " + "0" * 64 in message and f"{base}/img1.png" in message
    assert not (dataset.where / "img1.png").exists()
    assert not list(dataset.where.glob("*.part"))


def test_offline_message_names_url_and_folder(tmp_path: Path):
    base = f"http://127.0.0.1:{closed_port()}"
    manifest = {"name": "tiny", "count": 1,
                "files": [{"name": "a.png", "sha256": "1" * 64, "url": f"{base}/a.png"}]}
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError) as err:
        dataset.fetch()
    message = str(err.value)
    assert f"could not download tiny/a.png from {base}/a.png" in message
    assert "offline" in message and str(dataset.where / "a.png") in message

    zipped = {"name": "tz", "count": 1, "archive": {"url": f"{base}/tz.zip", "sha256": "2" * 64}}
    dataset = dataset_from_manifest(zipped, tmp_path / "data")
    with pytest.raises(DatasetError) as err:
        dataset.fetch()
    message = str(err.value)
    assert f"{base}/tz.zip" in message and str(tmp_path / "data" / ".downloads" / "tz.zip") in message
    assert f"unzip its images into {dataset.where}" in message


def test_zip_download_extracts_images_and_records_checksums(server, tmp_path: Path):
    served, base = server
    members = {"valid/a.png": png_bytes(1), "valid/b.png": png_bytes(2), "valid/readme.txt": b"hi",
               "__MACOSX/valid/._a.png": b"junk", "valid/": b""}
    dataset = dataset_from_manifest(zip_manifest(served, base, members, count=2), tmp_path / "data")
    status = dataset.fetch()
    assert status.complete and status.names_known
    assert sorted(p.name for p in dataset.where.iterdir()) == [EXTRACTION_RECORD, "a.png", "b.png"]
    assert (dataset.where / "a.png").read_bytes() == png_bytes(1)
    assert not (tmp_path / "data" / ".downloads" / "tiny.zip").exists()  # removed once extracted and recorded
    record = json.loads((dataset.where / EXTRACTION_RECORD).read_text())
    assert record["files"]["b.png"]["sha256"] == sha(png_bytes(2))

    # The record makes corruption of a count-only dataset detectable, by name.
    (dataset.where / "b.png").write_bytes(png_bytes(3)[: len(png_bytes(2))].ljust(len(png_bytes(2)), b"\0"))
    assert dataset.status().complete  # same size: only sha256 can tell
    assert dataset.status(verify=True).corrupted == [("b.png", "sha256 mismatch")]
    (dataset.where / "a.png").unlink()
    assert dataset.status().missing == ["a.png"]


def test_zip_with_wrong_checksum_is_not_extracted(server, tmp_path: Path):
    served, base = server
    manifest = zip_manifest(served, base, {"a.png": png_bytes(1)}, count=1)
    manifest["archive"]["sha256"] = "3" * 64
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError, match="has sha256"):
        dataset.fetch()
    assert not dataset.where.exists()


def test_zip_count_and_per_file_checks(server, tmp_path: Path):
    served, base = server
    dataset = dataset_from_manifest(zip_manifest(served, base, {"a.png": png_bytes(1)}, count=2),
                                    tmp_path / "one")
    with pytest.raises(DatasetError, match="held 1 images but the manifest expects 2"):
        dataset.fetch()

    # A per-file value that disagrees with a verified zip is the manifest's error: warn, record the real value.
    files = [{"name": "a.png", "sha256": "4" * 64}, {"name": "b.png", "sha256": sha(png_bytes(2))}]
    manifest = zip_manifest(served, base, {"d/a.png": png_bytes(1), "d/b.png": png_bytes(2)}, 2, files)
    dataset = dataset_from_manifest(manifest, tmp_path / "two")
    with pytest.warns(UserWarning, match=r"1 extracted files differ .*a\.png"):
        dataset.fetch()
    assert dataset.status(verify=True).complete


def _zip_with(info: zipfile.ZipInfo, data: bytes, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.png", png_bytes(0))
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize("member,why", [("../evil.png", "climbs out"), ("/abs/evil.png", "absolute path"),
                                        ("d/../../evil.png", "climbs out"), ("C:/evil.png", "absolute path")])
def test_zip_slip_is_rejected(tmp_path: Path, member: str, why: str):
    bad = _zip_with(zipfile.ZipInfo(member), png_bytes(1), tmp_path / "bad.zip")
    dest = tmp_path / "a" / "b"
    with pytest.raises(UnsafeArchiveError, match=why):
        extract_images(bad, dest)
    assert not list(tmp_path.rglob("evil.png")) and not (dest / "ok.png").exists()


def test_zip_symlink_member_is_rejected(tmp_path: Path):
    info = zipfile.ZipInfo("link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    bad = _zip_with(info, b"/etc/passwd", tmp_path / "bad.zip")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_images(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "ok.png").exists()


def test_zip_slip_through_fetch_is_a_dataset_error(server, tmp_path: Path):
    served, base = server
    manifest = zip_manifest(served, base, {"a.png": png_bytes(1), "../../escape.png": png_bytes(2)}, count=2)
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError, match="rejected"):
        dataset.fetch()
    assert not list(tmp_path.rglob("escape.png"))


def test_duplicate_names_in_zip_are_rejected(tmp_path: Path):
    bad = tmp_path / "dup.zip"
    bad.write_bytes(make_zip({"x/a.png": png_bytes(1), "y/a.png": png_bytes(2)}))
    with pytest.raises(UnsafeArchiveError, match="would both become a.png"):
        extract_images(bad, tmp_path / "out")


# --- size limits on archives, and files already in place that fail their checksum ---------------------------


def test_zip_that_expands_far_beyond_the_manifest_is_rejected_before_extraction(server, tmp_path: Path,
                                                                                  monkeypatch):
    from cdc_bench.datasets import archive as archive_module

    monkeypatch.setattr(archive_module, "SLACK", 0)  # limit = 4x the expected size, so a small test zip trips it
    served, base = server
    members = {"a.png": png_bytes(1), "b.png": b"\0" * 2_000_000}  # a 2 MB member in a zip of a few kB
    manifest = zip_manifest(served, base, members, count=2)
    assert manifest["archive"]["bytes"] < 10_000
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError) as err:
        dataset.fetch()
    message = str(err.value)
    limit = 4 * manifest["archive"]["bytes"]
    assert f"tiny.zip: its images would expand to {2_000_000 + len(png_bytes(1)):,} bytes" in message
    assert f"over the limit of {limit:,} bytes for this dataset; nothing was extracted" in message
    assert not (dataset.where / "a.png").exists() and not (dataset.where / "b.png").exists()


def test_zip_with_too_many_members_is_rejected(tmp_path: Path):
    bad = tmp_path / "many.zip"
    bad.write_bytes(make_zip({f"d/{i}.txt": b"" for i in range(300)} | {"a.png": png_bytes(1)}))
    with pytest.raises(UnsafeArchiveError, match="holds 301 members, over the limit of 260"):
        extract_images(bad, tmp_path / "out", max_members=4 * 1 + 256)
    with pytest.raises(UnsafeArchiveError, match="would expand to"):
        extract_images(bad, tmp_path / "out", max_bytes=100)
    assert not (tmp_path / "out" / "a.png").exists()
    assert extract_images(bad, tmp_path / "out", max_members=301)  # within the limits: extracted


def test_zip_larger_than_the_free_disk_is_rejected(tmp_path: Path, monkeypatch):
    from cdc_bench.datasets import archive as archive_module

    monkeypatch.setattr(archive_module, "_free_bytes", lambda dest: 10)
    bad = tmp_path / "a.zip"
    bad.write_bytes(make_zip({"a.png": png_bytes(1)}))
    with pytest.raises(UnsafeArchiveError, match=r"need [\d,]+ bytes but only 10 are free"):
        extract_images(bad, tmp_path / "out")


def test_wrong_zip_already_in_downloads_says_it_fails_its_sha256(tmp_path: Path):
    base = f"http://127.0.0.1:{closed_port()}"  # offline: the file cannot be fetched again
    zipped = {"name": "tz", "count": 1, "archive": {"url": f"{base}/tz.zip", "sha256": "2" * 64}}
    dataset = dataset_from_manifest(zipped, tmp_path / "data")
    placed = tmp_path / "data" / ".downloads" / "tz.zip"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(make_zip({"a.png": png_bytes(1)}))
    with pytest.raises(DatasetError) as err:
        dataset.fetch()
    message = str(err.value)
    assert (f"{placed}: this file fails its sha256 (expected {'2' * 64}, got {sha(placed.read_bytes())}): "
            "delete it or replace it") in message
    assert "could not download" not in message
    assert placed.exists() and not dataset.where.exists()  # the user's file is left for them to inspect


def test_wrong_zip_in_downloads_is_replaced_by_a_verified_download(server, tmp_path: Path):
    served, base = server
    dataset = dataset_from_manifest(zip_manifest(served, base, {"a.png": png_bytes(1)}, count=1), tmp_path / "d")
    placed = tmp_path / "d" / ".downloads" / "tiny.zip"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"an older, different zip")
    assert dataset.fetch().complete
    assert (dataset.where / "a.png").read_bytes() == png_bytes(1)


def test_download_longer_than_the_manifest_size_is_stopped(server, tmp_path: Path):
    from cdc_bench.download import ChecksumMismatch, download

    served, base = server
    (served / "big.bin").write_bytes(b"x" * 5000)
    dest = tmp_path / "out" / "big.bin"
    with pytest.raises(ChecksumMismatch, match="longer than the expected 1,000 bytes"):
        download(f"{base}/big.bin", dest, sha(b"x" * 1000), size=1000, progress=False)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))
    assert download(f"{base}/big.bin", dest, sha(b"x" * 5000), size=5000, progress=False) == dest


def test_a_zip_waiting_in_downloads_is_pointed_out(tmp_path: Path):
    zipped = {"name": "tz", "count": 1, "archive": {"url": "http://127.0.0.1:9/tz.zip", "sha256": "2" * 64}}
    dataset = dataset_from_manifest(zipped, tmp_path / "data")
    placed = tmp_path / "data" / ".downloads" / "tz.zip"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"whatever")
    with pytest.raises(DatasetError, match=f"{placed} is already there: run `cdc-bench download tz"):
        dataset.images()


def test_errors_are_the_shared_hierarchy_and_old_names_still_import():
    from cdc_bench import datasets, download, errors, images
    from cdc_bench.datasets import archive, manifest

    assert images.ImageReadError is errors.ImageReadError
    assert datasets.DatasetError is errors.DatasetError
    assert download.DownloadError is errors.DownloadError and download.ChecksumMismatch is errors.ChecksumMismatch
    assert issubclass(archive.UnsafeArchiveError, errors.DatasetError)
    assert issubclass(manifest.ManifestError, errors.DatasetError) and issubclass(manifest.ManifestError, ValueError)
    assert issubclass(images.ImageOptionError, errors.ConfigError) and images.ImageOptionError.exit_code == 2
    assert datasets.UnknownNameError is errors.UnknownNameError


@pytest.mark.parametrize("patch, why", [((6, 8, 0x1), "is encrypted"), ((8, 10, 9), "compression method")])
def test_encrypted_or_unsupported_members_are_a_clear_error(tmp_path: Path, patch, why):
    """Flags patched into the headers by hand: zipfile writes neither encrypted nor deflate64 members."""
    local_at, central_at, value = patch
    data = bytearray(make_zip({"a.png": png_bytes(1)}))
    data[data.index(b"PK\x03\x04") + local_at] |= value
    data[data.index(b"PK\x01\x02") + central_at] |= value
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match=f"member 'a.png' cannot be extracted .*{why}"):
        extract_images(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "a.png").exists()
