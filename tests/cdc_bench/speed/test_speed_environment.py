"""``speed.environment``: the speed report's environment comes from the same helpers as the run manifest."""

from __future__ import annotations

from cdc_bench import provenance as manifest
from cdc_bench.speed.environment import VERSIONED, environment


def test_environment_agrees_with_the_run_manifest():
    env = environment("cpu")
    git = manifest.git_commit() or {}
    assert env["git_commit"] == git.get("commit") and env["git_dirty"] == git.get("dirty")
    assert env["packages"] == manifest.package_versions(VERSIONED)
    assert env["device_name"] == manifest.cpu_model() == manifest.device_info("cpu")["cpu"]
