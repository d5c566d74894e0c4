"""`cdc-bench cdc-verify`: exit 0 on the official fixtures, 1 when a reference tensor is off, 2 on a bad dir."""
from __future__ import annotations

import shutil

import pytest
import torch
from click.testing import CliRunner

from cdc_bench.cli import main


@pytest.fixture(scope="module")
def fixtures(shared_dir):
    return shared_dir / "reference" / "cdc" / "fixtures"


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()  # --threads sets the process-wide count; keep other tests unaffected
    yield
    torch.set_num_threads(before)


def _copy_variant(fixtures, dest, prefix):
    for suffix in ("_config.json", "_ckpt.pt", "_expected.pt"):
        shutil.copy(fixtures / f"{prefix}{suffix}", dest / f"{prefix}{suffix}")


def test_fixtures_verify(fixtures):
    result = CliRunner().invoke(main, ["cdc-verify", str(fixtures), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "out_steps15" in result.output and "steps3_call2_net_out" in result.output
    assert "FAIL" not in result.output
    for prefix in ("xparam", "epsparam"):
        assert prefix in result.output


def test_a_wrong_reference_tensor_fails(fixtures, tmp_path):
    _copy_variant(fixtures, tmp_path, "xparam")
    expected = torch.load(tmp_path / "xparam_expected.pt", weights_only=True)
    expected["context_2"] = expected["context_2"] + 1e-2
    torch.save(expected, tmp_path / "xparam_expected.pt")
    result = CliRunner().invoke(main, ["cdc-verify", str(tmp_path), "--threads", "1", "--failures-only"])
    assert result.exit_code == 1, result.output
    assert "context_2" in result.output and "FAIL" in result.output
    assert "out_steps3" not in result.output  # only failures listed


def test_missing_files_and_bad_dirs_exit_2(fixtures, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["cdc-verify", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "not a directory" in result.output
    result = runner.invoke(main, ["cdc-verify", str(tmp_path)])
    assert result.exit_code == 2 and "xparam_config.json" in result.output
    shutil.copy(fixtures / "xparam_config.json", tmp_path / "xparam_config.json")
    result = runner.invoke(main, ["cdc-verify", str(tmp_path)])
    assert result.exit_code == 2 and "xparam_ckpt.pt: missing" in result.output


def test_one_rounding_flip_of_a_quantised_latent_fails(fixtures, tmp_path):
    # A ±1 flip of one quantised latent changes decoded images by tens of levels: never within tolerance.
    _copy_variant(fixtures, tmp_path, "xparam")
    expected = torch.load(tmp_path / "xparam_expected.pt", weights_only=True)
    flipped = expected["q_latent"].clone()
    flipped.view(-1)[7] += 1.0
    expected["q_latent"] = flipped
    torch.save(expected, tmp_path / "xparam_expected.pt")
    result = CliRunner().invoke(main, ["cdc-verify", str(tmp_path), "--threads", "1", "--failures-only"])
    assert result.exit_code == 1, result.output
    assert "q_latent" in result.output and "1 element(s) off" in result.output


def test_x_param_decoded_images_are_held_to_1e_4(fixtures, tmp_path):
    _copy_variant(fixtures, tmp_path, "xparam")
    expected = torch.load(tmp_path / "xparam_expected.pt", weights_only=True)
    expected["out_steps3"] = expected["out_steps3"] + 5e-4  # would have passed the former 1e-3
    torch.save(expected, tmp_path / "xparam_expected.pt")
    result = CliRunner().invoke(main, ["cdc-verify", str(tmp_path), "--threads", "1", "--failures-only"])
    assert result.exit_code == 1 and "out_steps3" in result.output, result.output
