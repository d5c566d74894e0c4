"""Safe extraction of dataset zips: zip-slip, links, name clashes, size and member limits, unreadable members."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from cdc_bench.datasets.archive import UnsafeArchiveError, extract_images


def _zip_with(kit, info: zipfile.ZipInfo, data: bytes, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.png", kit.png_bytes(0))
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize("member,why", [("../evil.png", "climbs out"), ("/abs/evil.png", "absolute path"),
                                        ("d/../../evil.png", "climbs out"), ("C:/evil.png", "absolute path")])
def test_zip_slip_is_rejected(kit, tmp_path: Path, member: str, why: str):
    bad = _zip_with(kit, zipfile.ZipInfo(member), kit.png_bytes(1), tmp_path / "bad.zip")
    dest = tmp_path / "a" / "b"
    with pytest.raises(UnsafeArchiveError, match=why):
        extract_images(bad, dest)
    assert not list(tmp_path.rglob("evil.png")) and not (dest / "ok.png").exists()


def test_zip_symlink_member_is_rejected(kit, tmp_path: Path):
    info = zipfile.ZipInfo("link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    bad = _zip_with(kit, info, b"/etc/passwd", tmp_path / "bad.zip")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_images(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "ok.png").exists()


def test_duplicate_names_in_zip_are_rejected(kit, tmp_path: Path):
    bad = tmp_path / "dup.zip"
    bad.write_bytes(kit.make_zip({"x/a.png": kit.png_bytes(1), "y/a.png": kit.png_bytes(2)}))
    with pytest.raises(UnsafeArchiveError, match="would both become a.png"):
        extract_images(bad, tmp_path / "out")


def test_zip_with_too_many_members_is_rejected(kit, tmp_path: Path):
    bad = tmp_path / "many.zip"
    bad.write_bytes(kit.make_zip({f"d/{i}.txt": b"" for i in range(300)} | {"a.png": kit.png_bytes(1)}))
    with pytest.raises(UnsafeArchiveError, match="holds 301 members, over the limit of 260"):
        extract_images(bad, tmp_path / "out", max_members=4 * 1 + 256)
    with pytest.raises(UnsafeArchiveError, match="would expand to"):
        extract_images(bad, tmp_path / "out", max_bytes=100)
    assert not (tmp_path / "out" / "a.png").exists()
    assert extract_images(bad, tmp_path / "out", max_members=301)  # within the limits: extracted


def test_zip_larger_than_the_free_disk_is_rejected(kit, tmp_path: Path, monkeypatch):
    from cdc_bench.datasets import archive as archive_module

    monkeypatch.setattr(archive_module, "_free_bytes", lambda dest: 10)
    bad = tmp_path / "a.zip"
    bad.write_bytes(kit.make_zip({"a.png": kit.png_bytes(1)}))
    with pytest.raises(UnsafeArchiveError, match=r"need [\d,]+ bytes but only 10 are free"):
        extract_images(bad, tmp_path / "out")


@pytest.mark.parametrize("patch, why", [((6, 8, 0x1), "is encrypted"), ((8, 10, 9), "compression method")])
def test_encrypted_or_unsupported_members_are_a_clear_error(kit, tmp_path: Path, patch, why):
    """Flags patched into the headers by hand: zipfile writes neither encrypted nor deflate64 members."""
    local_at, central_at, value = patch
    data = bytearray(kit.make_zip({"a.png": kit.png_bytes(1)}))
    data[data.index(b"PK\x03\x04") + local_at] |= value
    data[data.index(b"PK\x01\x02") + central_at] |= value
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match=f"member 'a.png' cannot be extracted .*{why}"):
        extract_images(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "a.png").exists()
