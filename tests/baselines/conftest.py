"""Fixtures shared by the learned-baseline tests."""

from __future__ import annotations

import urllib.error

import pytest


@pytest.fixture()
def offline_torch_hub(tmp_path, monkeypatch):
    """torch.hub's cache in a fresh folder: never read the user's weights, never download."""
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
