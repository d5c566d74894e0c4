"""Helpers for the dataset tests: small PNGs, zips and manifests made on the spot (the ``kit`` fixture)."""

from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


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


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for tests: ``kit.png_bytes(seed)``, ``kit.make_zip(members)``, ..."""
    return SimpleNamespace(png_bytes=png_bytes, sha=sha, per_file_manifest=per_file_manifest, make_zip=make_zip,
                           zip_manifest=zip_manifest, closed_port=closed_port)
