"""Dataset downloads against a local HTTP server on 127.0.0.1 (started here): per-file and zip datasets,
checksum mismatches, wrong files already in place, size limits, the offline message and `cdc-bench download`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdc_bench.cli import main
from cdc_bench.datasets import DatasetError, dataset_from_manifest, get_dataset
from cdc_bench.datasets import manifest as manifest_module
from cdc_bench.datasets.core import EXTRACTION_RECORD


def test_per_file_download_then_verified(kit, server, tmp_path: Path):
    served, base = server
    dataset = dataset_from_manifest(kit.per_file_manifest(served, base), tmp_path / "data")
    with pytest.raises(DatasetError, match="tiny: not found"):
        dataset.images()
    status = dataset.fetch()
    assert status.complete and status.present == 3
    items = dataset.images(verify=True)
    assert [i.name for i in items] == ["img0", "img1", "img2"]
    assert all(i.path.read_bytes() == (served / i.path.name).read_bytes() for i in items)


def test_download_replaces_only_damaged_files(kit, server, tmp_path: Path):
    served, base = server
    dataset = dataset_from_manifest(kit.per_file_manifest(served, base), tmp_path / "data")
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


def test_get_dataset_download_uses_shipped_manifests(kit, server, tmp_path: Path, monkeypatch):
    served, base = server
    manifests = tmp_path / "checkout" / "datasets"  # looks like a source checkout: datasets/ beside pyproject.toml
    manifests.mkdir(parents=True)
    (manifests.parent / "pyproject.toml").write_text("")
    (manifests / "tiny.json").write_text(json.dumps(kit.per_file_manifest(served, base)))
    monkeypatch.setattr(manifest_module, "MANIFEST_DIR", manifests)
    root = tmp_path / "data"
    with pytest.raises(DatasetError):
        get_dataset("tiny", root).images()
    assert len(get_dataset("tiny", root, download=True).images()) == 3

    (root / "tiny" / "img0.png").unlink()
    result = CliRunner().invoke(main, ["download", "tiny", "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "tiny: 3 of 3 images present" in result.output


def test_checksum_mismatch_is_rejected_and_not_kept(kit, server, tmp_path: Path):
    served, base = server
    manifest = kit.per_file_manifest(served, base)
    manifest["files"][1]["sha256"] = "0" * 64
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError) as err:
        dataset.fetch()
    message = str(err.value)
    assert "has sha256" in message and "expected " + "0" * 64 in message and f"{base}/img1.png" in message
    assert not (dataset.where / "img1.png").exists()
    assert not list(dataset.where.glob("*.part"))


def test_offline_message_names_url_and_folder(kit, tmp_path: Path):
    base = f"http://127.0.0.1:{kit.closed_port()}"
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


def test_zip_download_extracts_images_and_records_checksums(kit, server, tmp_path: Path):
    served, base = server
    members = {"valid/a.png": kit.png_bytes(1), "valid/b.png": kit.png_bytes(2), "valid/readme.txt": b"hi",
               "__MACOSX/valid/._a.png": b"junk", "valid/": b""}
    dataset = dataset_from_manifest(kit.zip_manifest(served, base, members, count=2), tmp_path / "data")
    status = dataset.fetch()
    assert status.complete and status.names_known
    assert sorted(p.name for p in dataset.where.iterdir()) == [EXTRACTION_RECORD, "a.png", "b.png"]
    assert (dataset.where / "a.png").read_bytes() == kit.png_bytes(1)
    assert not (tmp_path / "data" / ".downloads" / "tiny.zip").exists()  # removed once extracted and recorded
    record = json.loads((dataset.where / EXTRACTION_RECORD).read_text())
    assert record["files"]["b.png"]["sha256"] == kit.sha(kit.png_bytes(2))

    # The record makes corruption of a count-only dataset detectable, by name.
    size = len(kit.png_bytes(2))
    (dataset.where / "b.png").write_bytes(kit.png_bytes(3)[:size].ljust(size, b"\0"))
    assert dataset.status().complete  # same size: only sha256 can tell
    assert dataset.status(verify=True).corrupted == [("b.png", "sha256 mismatch")]
    (dataset.where / "a.png").unlink()
    assert dataset.status().missing == ["a.png"]


def test_zip_with_wrong_checksum_is_not_extracted(kit, server, tmp_path: Path):
    served, base = server
    manifest = kit.zip_manifest(served, base, {"a.png": kit.png_bytes(1)}, count=1)
    manifest["archive"]["sha256"] = "3" * 64
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError, match="has sha256"):
        dataset.fetch()
    assert not dataset.where.exists()


def test_zip_count_and_per_file_checks(kit, server, tmp_path: Path):
    served, base = server
    dataset = dataset_from_manifest(kit.zip_manifest(served, base, {"a.png": kit.png_bytes(1)}, count=2),
                                    tmp_path / "one")
    with pytest.raises(DatasetError, match="held 1 images but the manifest expects 2"):
        dataset.fetch()

    # A per-file value that disagrees with a verified zip is the manifest's error: warn, record the real value.
    files = [{"name": "a.png", "sha256": "4" * 64}, {"name": "b.png", "sha256": kit.sha(kit.png_bytes(2))}]
    manifest = kit.zip_manifest(served, base, {"d/a.png": kit.png_bytes(1), "d/b.png": kit.png_bytes(2)}, 2, files)
    dataset = dataset_from_manifest(manifest, tmp_path / "two")
    with pytest.warns(UserWarning, match=r"1 extracted files differ .*a\.png"):
        dataset.fetch()
    assert dataset.status(verify=True).complete


def test_zip_slip_through_fetch_is_a_dataset_error(kit, server, tmp_path: Path):
    served, base = server
    members = {"a.png": kit.png_bytes(1), "../../escape.png": kit.png_bytes(2)}
    manifest = kit.zip_manifest(served, base, members, count=2)
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError, match="rejected"):
        dataset.fetch()
    assert not list(tmp_path.rglob("escape.png"))


def test_zip_that_expands_far_beyond_the_manifest_is_rejected_before_extraction(kit, server, tmp_path: Path,
                                                                                  monkeypatch):
    from cdc_bench.datasets import archive as archive_module

    monkeypatch.setattr(archive_module, "SLACK", 0)  # limit = 4x the expected size, so a small test zip trips it
    served, base = server
    members = {"a.png": kit.png_bytes(1), "b.png": b"\0" * 2_000_000}  # a 2 MB member in a zip of a few kB
    manifest = kit.zip_manifest(served, base, members, count=2)
    assert manifest["archive"]["bytes"] < 10_000
    dataset = dataset_from_manifest(manifest, tmp_path / "data")
    with pytest.raises(DatasetError) as err:
        dataset.fetch()
    message = str(err.value)
    limit = 4 * manifest["archive"]["bytes"]
    assert f"tiny.zip: its images would expand to {2_000_000 + len(kit.png_bytes(1)):,} bytes" in message
    assert f"over the limit of {limit:,} bytes for this dataset; nothing was extracted" in message
    assert not (dataset.where / "a.png").exists() and not (dataset.where / "b.png").exists()


def test_wrong_zip_already_in_downloads_says_it_fails_its_sha256(kit, tmp_path: Path):
    base = f"http://127.0.0.1:{kit.closed_port()}"  # offline: the file cannot be fetched again
    zipped = {"name": "tz", "count": 1, "archive": {"url": f"{base}/tz.zip", "sha256": "2" * 64}}
    dataset = dataset_from_manifest(zipped, tmp_path / "data")
    placed = tmp_path / "data" / ".downloads" / "tz.zip"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(kit.make_zip({"a.png": kit.png_bytes(1)}))
    with pytest.raises(DatasetError) as err:
        dataset.fetch()
    message = str(err.value)
    assert (f"{placed}: this file fails its sha256 (expected {'2' * 64}, got {kit.sha(placed.read_bytes())}): "
            "delete it or replace it") in message
    assert "could not download" not in message
    assert placed.exists() and not dataset.where.exists()  # the user's file is left for them to inspect


def test_wrong_zip_in_downloads_is_replaced_by_a_verified_download(kit, server, tmp_path: Path):
    served, base = server
    manifest = kit.zip_manifest(served, base, {"a.png": kit.png_bytes(1)}, count=1)
    dataset = dataset_from_manifest(manifest, tmp_path / "d")
    placed = tmp_path / "d" / ".downloads" / "tiny.zip"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"an older, different zip")
    assert dataset.fetch().complete
    assert (dataset.where / "a.png").read_bytes() == kit.png_bytes(1)


def test_a_zip_waiting_in_downloads_is_pointed_out(tmp_path: Path):
    zipped = {"name": "tz", "count": 1, "archive": {"url": "http://127.0.0.1:9/tz.zip", "sha256": "2" * 64}}
    dataset = dataset_from_manifest(zipped, tmp_path / "data")
    placed = tmp_path / "data" / ".downloads" / "tz.zip"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"whatever")
    with pytest.raises(DatasetError, match=f"{placed} is already there: run `cdc-bench download tz"):
        dataset.images()
