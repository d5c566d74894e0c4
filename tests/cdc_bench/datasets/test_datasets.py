"""Datasets without the network: the team's Kodak copy (complete, sha256-verified), damaged copies, folder:PATH,
the embedded default set, unknown names, the shipped manifests and `cdc-bench datasets`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cdc_bench.cli import main
from cdc_bench.datasets import (DatasetError, ManifestError, UnknownNameError, dataset_from_manifest,
                                dataset_names, default_data_root, get_dataset, load_manifest)
from cdc_bench.datasets.manifest import MANIFEST_DIR, builtin_manifests
from cdc_bench.datasets.images import read_image

KODAK_NAMES = [f"kodim{i:02d}" for i in range(1, 25)]


@pytest.fixture
def kodak_copy(kodak_dir: Path, tmp_path: Path) -> Path:
    """A data root holding a fresh copy of the 24 Kodak files."""
    shutil.copytree(kodak_dir, tmp_path / "kodak", ignore=shutil.ignore_patterns("*.json", "*.md"))
    return tmp_path


def test_kodak_from_shared_is_complete_and_verified(kodak_dir: Path):
    dataset = get_dataset("kodak", kodak_dir.parent)
    status = dataset.status(verify=True)
    assert (status.present, status.expected, status.complete, status.verified) == (24, 24, True, True)
    items = dataset.images(verify=True)
    assert [item.name for item in items] == KODAK_NAMES
    assert all(item.path == kodak_dir / f"{item.name}.png" for item in items)
    # Portrait images are kept as distributed (512 wide, 768 high), not rotated.
    assert read_image(items[3].path)[0].shape == (768, 512, 3)


def test_kodak_manifest_matches_the_team_checksum_list(shared_dir: Path):
    listed = dict(line.split()[::-1] for line in
                  (shared_dir / "reference/checksums/kodak.sha256").read_text().splitlines() if line.strip())
    manifest = builtin_manifests()["kodak"]
    assert {f.name: f.sha256 for f in manifest.files} == listed
    assert all(f.url == f"http://r0k.us/graphics/kodak/kodak/{f.name}" for f in manifest.files)


def test_div2k_manifest_matches_the_team_checksums(shared_dir: Path):
    reference = json.loads((shared_dir / "reference/checksums/div2k_valid_hr.json").read_text())
    manifest = builtin_manifests()["div2k-valid"]
    assert {f.name: f.sha256 for f in manifest.files} == {f["name"]: f["sha256"] for f in reference["files"]}
    assert manifest.archive.sha256 == reference["official_zip"]["sha256"]
    assert manifest.archive.url == reference["official_zip"]["url"]


def test_shipped_manifests_are_valid_and_zips_are_checksummed():
    manifests = builtin_manifests()
    assert set(manifests) == {"kodak", "div2k-valid", "clic2020-professional-valid", "clic2020-mobile-valid",
                              "clic2020-professional-test", "clic2020-mobile-test"}
    for manifest in manifests.values():
        assert manifest.source_path == MANIFEST_DIR / f"{manifest.name}.json"
        if manifest.archive is not None:
            assert len(manifest.archive.sha256) == 64 and manifest.archive.bytes > 0
    # CLIC 2020 test = 250 professional + 178 mobile = 428 images.
    assert manifests["clic2020-professional-test"].count + manifests["clic2020-mobile-test"].count == 428
    assert manifests["clic2020-professional-valid"].files is None  # no per-image checksums are published


def test_missing_and_corrupted_files_are_named(kodak_copy: Path):
    folder = kodak_copy / "kodak"
    for name in ("kodim05", "kodim06", "kodim09"):
        (folder / f"{name}.png").unlink()
    data = bytearray((folder / "kodim07.png").read_bytes())
    data[5000] ^= 0xFF  # same size: only sha256 can tell
    (folder / "kodim07.png").write_bytes(bytes(data))
    dataset = get_dataset("kodak", kodak_copy)

    fast = dataset.status()
    assert fast.missing == ["kodim05.png", "kodim06.png", "kodim09.png"] and fast.corrupted == []
    verified = dataset.status(verify=True)
    assert verified.summary() == ("kodak: 3 of 24 images missing: kodim05.png, kodim06.png, kodim09.png; "
                                  "1 corrupted: kodim07.png (sha256 mismatch)")
    with pytest.raises(DatasetError) as err:
        dataset.images()
    message = str(err.value)
    assert "kodim05.png" in message and str(folder) in message
    assert "http://r0k.us/graphics/kodak/kodak/kodim05.png" in message
    assert "cdc-bench download kodak" in message


def test_truncated_file_is_caught_by_size_without_hashing(kodak_copy: Path):
    path = kodak_copy / "kodak" / "kodim12.png"
    path.write_bytes(path.read_bytes()[:1000])
    status = get_dataset("kodak", kodak_copy).status()
    assert not status.complete
    assert status.corrupted == [("kodim12.png", "1000 bytes, expected 531024")]


def test_absent_dataset_says_where_it_was_looked_for(tmp_path: Path):
    with pytest.raises(DatasetError) as err:
        get_dataset("div2k-valid", tmp_path).images()
    message = str(err.value)
    assert f"not found (expected at {tmp_path / 'div2k-valid'})" in message
    assert "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip" in message
    assert str(tmp_path / ".downloads" / "DIV2K_valid_HR.zip") in message


def test_count_only_dataset_reports_how_many_are_there(tmp_path: Path):
    folder = tmp_path / "clic2020-professional-valid"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(folder / f"img{i}.png")
    status = get_dataset("clic2020-professional-valid", tmp_path).status()
    assert (status.present, status.expected, status.complete) == (3, 41, False)
    assert f"3 images found at {folder}, 41 expected" in status.summary()
    for i in range(3, 41):
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(folder / f"img{i}.png")
    status = get_dataset("clic2020-professional-valid", tmp_path).status(verify=True)
    assert status.complete and not status.verified
    assert "image count checked; no per-image checksums are known" in status.summary()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "extra.png")
    result = CliRunner().invoke(main, ["datasets", "--data-root", str(tmp_path)], env={"COLUMNS": "250"})
    line = next(row for row in result.output.splitlines() if "│ clic2020-professional-valid" in row)
    assert "42/41" in line and "1 more than expected" in line


def test_folder_spec_lists_images_sorted(tmp_path: Path):
    for name in ("b.png", "a.jpg", "c.tiff"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    dataset = get_dataset(f"folder:{tmp_path}")
    assert dataset.name == f"folder:{tmp_path.resolve()}"
    with pytest.warns(UserWarning, match="1 file skipped, not an image by its suffix .*: notes.txt"):
        items = dataset.images()
    assert [(i.name, i.path.name) for i in items] == [("a", "a.jpg"), ("b", "b.png"), ("c", "c.tiff")]


def test_folder_spec_errors(tmp_path: Path):
    with pytest.raises(DatasetError, match="is not a folder"):
        get_dataset(f"folder:{tmp_path / 'nope'}").images()
    with pytest.raises(DatasetError, match="no images at"):
        get_dataset(f"folder:{tmp_path}").images()
    with pytest.raises(DatasetError, match="needs a path"):
        get_dataset("folder:")
    for name in ("x.png", "x.jpg"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
    with pytest.raises(DatasetError, match="share the image name 'x'"):
        get_dataset(f"folder:{tmp_path}").images()


def test_default_dataset_is_embedded_rgb_photographs():
    dataset = get_dataset("default")
    items = dataset.images(verify=True)
    assert [i.name for i in items] == ["astronaut", "chelsea", "coffee", "motorcycle_left", "rocket"]
    for item in items:
        image, notes = read_image(item.path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        # real colour photographs, no conversion needed; rocket.jpg (scikit-image's) is tagged Adobe RGB, and its
        # pixels are used as stored, as everywhere else, with a note that says so
        assert min(image.shape[:2]) >= 300
        assert notes == ([] if item.name != "rocket" else [
            "rocket.jpg: embedded ICC profile 'Adobe RGB (1998)' ignored: the pixels are used as stored, not "
            "converted to sRGB, as CompressAI and clean-fid read them"])
        assert np.ptp(image.astype(int), axis=(0, 1)).min() > 100


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        get_dataset("kodac")
    message = str(err.value)
    assert "Did you mean kodak?" in message
    for name in dataset_names():
        assert name in message
    assert "folder:PATH" in message and dataset_names()[0] == "default"


def test_data_root_precedence(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CDC_BENCH_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    assert get_dataset("kodak").where == tmp_path / "kodak"
    assert get_dataset("kodak", tmp_path / "other").where == tmp_path / "other" / "kodak"
    monkeypatch.delenv("CDC_BENCH_DATA")
    assert default_data_root() == MANIFEST_DIR  # running from a checkout


def test_manifest_errors_name_the_problem(tmp_path: Path):
    good = {"name": "t", "count": 1, "files": [{"name": "a.png", "sha256": "0" * 64, "url": "http://x/a.png"}]}
    assert dataset_from_manifest(good, tmp_path).where == tmp_path / "t"
    with pytest.raises(ManifestError, match="'count' is 2 but 1 files"):
        load_manifest({**good, "count": 2})
    with pytest.raises(ManifestError, match="64 hex digits"):
        load_manifest({**good, "files": [{"name": "a.png", "sha256": "abc", "url": "http://x/a.png"}]})
    with pytest.raises(ManifestError, match="plain file name"):
        load_manifest({**good, "files": [{"name": "../a.png", "url": "http://x/a.png"}]})
    with pytest.raises(ManifestError, match="'archive' or a 'url'"):
        load_manifest({"name": "t", "count": 3})
    for name in ("../../x", "..", "a/b"):  # it names a folder under the data root
        with pytest.raises(ManifestError, match="must be a plain name"):
            load_manifest({**good, "name": name})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="bad.json"):
        load_manifest(bad)
    bad.write_bytes(b"\xff\xfe{}")   # not UTF-8 text: one line too, not a UnicodeDecodeError
    with pytest.raises(ManifestError, match="bad.json: cannot read dataset manifest .*utf-8"):
        load_manifest(bad)


def test_datasets_command_table(kodak_copy: Path):
    (kodak_copy / "kodak" / "kodim02.png").unlink()
    result = CliRunner().invoke(main, ["datasets", "--data-root", str(kodak_copy)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if "│ kodak" in row)
    assert "23/24" in line and "incomplete: 1 missing" in line
    assert "5/5" in next(row for row in result.output.splitlines() if "│ default" in row)


def test_datasets_command_verify_fails_on_corruption(kodak_copy: Path):
    path = kodak_copy / "kodak" / "kodim03.png"
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    plain = CliRunner().invoke(main, ["datasets", "--data-root", str(kodak_copy)])
    assert plain.exit_code == 0 and "complete" in plain.output
    verified = CliRunner().invoke(main, ["datasets", "--data-root", str(kodak_copy), "--verify"])
    assert verified.exit_code == 1
    assert "1 corrupted" in verified.output


def test_installed_copy_uses_shipped_data_files_and_the_cache(monkeypatch, tmp_path: Path):
    from cdc_bench.datasets import manifest as manifest_module

    site = tmp_path / "site-packages" / "datasets"  # e.g. Hugging Face's package: not a checkout
    site.mkdir(parents=True)
    installed = tmp_path / "share" / "cdc-bench" / "datasets"
    installed.mkdir(parents=True)
    shutil.copy(MANIFEST_DIR / "kodak.json", installed)
    monkeypatch.setattr(manifest_module, "MANIFEST_DIR", site)
    monkeypatch.setattr(manifest_module, "INSTALLED_MANIFEST_DIR", installed)
    monkeypatch.delenv("CDC_BENCH_DATA", raising=False)
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    assert dataset_names() == ["default", "kodak"]
    assert default_data_root() == tmp_path / "cache" / "datasets"


# --- hostile folders: nothing is skipped or changed without a message that names the file ------------------


def _bomb_png(path: Path, side: int) -> None:
    """A PNG of a few kB whose header claims side x side 1-bit pixels (all-zero data)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = zlib.compress(b"\0" * ((1 + (side + 7) // 8) * side), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    root = tmp_path / "hostile"
    root.mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(root / "good.png")
    frames = [Image.new("RGB", (40, 24), c) for c in ((200, 10, 10), (10, 200, 10))]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=40)
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(root / "turned.png", exif=exif)
    _bomb_png(root / "bomb.png", 12000)
    (root / "link.png").symlink_to(root / "was-deleted.png")
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_lists_dangling_links_and_gifs_and_names_what_it_skips(hostile: Path):
    dataset = get_dataset(f"folder:{hostile}")
    with pytest.warns(UserWarning) as caught:
        items = dataset.images()
    assert [i.name for i in items] == ["anim", "bomb", "good", "link", "turned"]
    messages = [str(w.message) for w in caught]
    assert any("link.png is a dangling symbolic link" in m and "was-deleted.png" in m for m in messages)
    assert any("1 file skipped" in m and "notes.txt" in m for m in messages)


def test_folder_names_a_pipe_with_an_image_suffix(tmp_path: Path):
    import os

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block: skipped, but said so
    with pytest.warns(UserWarning, match=r"skipped pipe\.png: not a regular file"):
        items = get_dataset(f"folder:{tmp_path}").images()
    assert [i.name for i in items] == ["a"]


def test_manifest_dataset_names_a_dangling_link(kodak_copy: Path):
    target = kodak_copy / "kodak" / "kodim05.png"
    target.unlink()
    target.symlink_to(kodak_copy / "elsewhere.png")
    status = get_dataset("kodak", kodak_copy).status()
    assert status.corrupted == [("kodim05.png", f"dangling symbolic link to {kodak_copy / 'elsewhere.png'}")]
    assert "kodim05.png (dangling symbolic link" in status.summary()


def test_run_on_a_hostile_folder_gives_a_row_or_a_named_error_for_every_file(hostile: Path, tmp_path: Path,
                                                                              monkeypatch):
    monkeypatch.delenv("CDC_BENCH_MAX_PIXELS", raising=False)
    out = tmp_path / "out"
    with pytest.warns(UserWarning) as caught:
        result = CliRunner().invoke(main, ["run", "-d", f"folder:{hostile}", "-c", "jpeg", "-q", "50", "-m", "psnr",
                                           "--out", str(out), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert any("link.png is a dangling symbolic link" in str(w.message) for w in caught)
    import pandas as pd

    rows = pd.read_csv(out / "results.csv").set_index("image")
    assert sorted(rows.index) == ["anim", "bomb", "good", "link", "turned"]
    assert rows.loc["good", "status"] == "ok" and rows.loc["anim", "status"] == "ok"
    assert "2 frames (GIF); only the first frame is used" in rows.loc["anim", "warnings"]
    assert rows.loc["turned", "status"] == "ok" and "EXIF orientation 8" in rows.loc["turned", "warnings"]
    assert rows.loc["bomb", "status"] == "error"
    assert f"{hostile / 'bomb.png'}: too large (144,000,000 px > limit of 64,000,000 px" in rows.loc["bomb", "error"]
    assert rows.loc["link", "status"] == "error" and "link.png: dangling symbolic link" in rows.loc["link", "error"]


def test_a_file_name_that_is_not_utf8_gets_an_escaped_image_name_and_error_text(tmp_path):
    from cdc_bench.datasets import get_dataset
    from cdc_bench.datasets.images import ImageReadError, read_image

    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    bad = tmp_path / b"bad\xffname.png".decode("utf-8", "surrogateescape")
    bad.write_bytes(b"not an image")
    names = [item.name for item in get_dataset(f"folder:{tmp_path}").images()]
    assert names == ["bad\\xffname", "ok"]
    with pytest.raises(ImageReadError) as err:
        read_image(bad)
    str(err.value).encode("utf-8")  # storable: no lone surrogate left
    assert "bad\\xffname.png" in str(err.value)


@pytest.mark.parametrize("change, said", [
    ({"count": 0, "files": []}, "at least 1"),
    ({"count": True}, "at least 1"),
    ({"count": 2, "files": [{"name": "a.png", "url": "u"}, {"name": "a.jpg", "url": "u"}]}, "share the image name"),
])
def test_manifest_with_no_images_or_a_shared_image_name_is_refused(change, said):
    from cdc_bench.datasets import ManifestError, load_manifest

    manifest = {"name": "mine", "count": 1, "files": [{"name": "a.png", "url": "u"}], **change}
    with pytest.raises(ManifestError, match=said):
        load_manifest(manifest)


def test_manifest_file_that_is_not_utf8_is_a_manifest_error(tmp_path):
    from cdc_bench.datasets import ManifestError, load_manifest

    (tmp_path / "m.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ManifestError, match="cannot read dataset manifest"):
        load_manifest(tmp_path / "m.json")
