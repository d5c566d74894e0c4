"""``speed.environment``: the speed report's environment comes from the same helpers as the run manifest."""

from __future__ import annotations

from cdc_bench import provenance as manifest
from cdc_bench.speed.environment import VERSIONED, environment


def test_environment_agrees_with_the_run_manifest():
    env = environment("cpu")
    git = manifest.git_commit() or {}
    assert (env["git"] or {}) == git
    assert env["versions"] == manifest.package_versions(VERSIONED)
    assert env["device_name"] == manifest.cpu_model() == manifest.device_info("cpu")["cpu"]


def test_the_run_manifest_and_the_speed_environment_use_the_same_field_names():
    run = manifest.build_manifest("r", {}, "cpu")
    env = environment("cpu")
    shared = {"cdc_bench", "versions", "python", "platform", "host", "git", "device", "device_name", "cpu",
              "cpu_count", "created"}
    assert shared <= set(run) and shared <= set(env)
    assert run["started_at"].endswith("+00:00") and env["created"].endswith("+00:00")
