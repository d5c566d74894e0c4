"""`cdc-bench cdc-verify`: exit 0 on the official fixtures, 1 when a reference tensor is off, 2 on a bad dir."""
from __future__ import annotations

import json
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
    assert "input fed channels_last" in result.output  # the recipe's read_image gives a channels-last view
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
    assert "q_latent symbols" in result.output and "1 symbol flip(s), 1 not at .5" in result.output
    assert "(0, 0, 1, 3)" in result.output  # located: element 7 of 1x16x4x4


def test_x_param_decoded_images_are_held_to_1e_4(fixtures, tmp_path):
    _copy_variant(fixtures, tmp_path, "xparam")
    expected = torch.load(tmp_path / "xparam_expected.pt", weights_only=True)
    expected["out_steps3"] = expected["out_steps3"] + 5e-4  # would have passed the former 1e-3
    torch.save(expected, tmp_path / "xparam_expected.pt")
    result = CliRunner().invoke(main, ["cdc-verify", str(tmp_path), "--threads", "1", "--failures-only"])
    assert result.exit_code == 1 and "out_steps3" in result.output, result.output


def _channels_last_fixture(fixtures, dest, record: str):
    """The x-param fixture recomputed from a channels-last input (as the official test script reads it), the
    input stored contiguous; ``record``: "config" (input.memory_format), "strides" (x saved channels-last) or ""."""
    from cdc_bench.cdc.checkpoint import load_cdc
    from cdc_bench.cdc.model import CDCConfig
    from cdc_bench.cdc.verify import computed_tensors

    _copy_variant(fixtures, dest, "xparam")
    raw = json.loads((dest / "xparam_config.json").read_text())
    raw["steps"] = [1, 3]  # the traced step counts; keeps the test short
    config = CDCConfig.from_dict(raw)
    exp = torch.load(dest / "xparam_expected.pt", weights_only=True)
    model = load_cdc(dest / "xparam_ckpt.pt", config=config)
    x_cl, init_cl = (exp[k].contiguous(memory_format=torch.channels_last) for k in ("x", "init"))
    ours, out = computed_tensors(model, config, raw, x_cl, init_cl)
    new = {"x": x_cl if record == "strides" else exp["x"], "init": exp["init"],
           "q_latent": out.q_latent, "q_hyper_latent": out.q_hyper_latent,
           **{k: v[0].contiguous() for k, v in ours.items() if k in exp}}
    new = {k: v.contiguous() if k != "x" else v for k, v in new.items()}
    if record == "config":
        raw["input"]["memory_format"] = "channels_last"
    torch.save(new, dest / "xparam_expected.pt")
    (dest / "xparam_config.json").write_text(json.dumps(raw))
    return new


@pytest.mark.parametrize("record", ["config", "strides"])
def test_a_channels_last_fixture_verifies_fed_as_it_was_made(fixtures, tmp_path, record):
    _channels_last_fixture(fixtures, tmp_path, record)
    result = CliRunner().invoke(main, ["cdc-verify", str(tmp_path), "--threads", "1", "--strict"])
    assert result.exit_code == 0, result.output
    assert "input fed channels_last" in result.output and "q_latent symbols" in result.output


def test_one_genuine_symbol_flip_in_a_channels_last_fixture_fails(fixtures, tmp_path):
    new = _channels_last_fixture(fixtures, tmp_path, "config")
    new["q_latent"].view(-1)[5] -= 1.0
    torch.save(new, tmp_path / "xparam_expected.pt")
    result = CliRunner().invoke(main, ["cdc-verify", str(tmp_path), "--threads", "1", "--failures-only"])
    assert result.exit_code == 1, result.output
    assert "1 symbol flip(s), 1 not at .5" in result.output and "(0, 0, 1, 1)" in result.output


def test_flips_at_half_are_warnings_other_flips_failures():
    from cdc_bench.cdc.verify import compare_symbols

    value, zero = torch.tensor([[2.4999999, 1.2, -0.5000001]]), torch.zeros(1, 3)
    same = compare_symbols("x", "q", value, zero, torch.tensor([[2.0, 1.0, -1.0]]), zero)
    assert same.ok and not same.warning
    at_half = compare_symbols("x", "q", value, zero, torch.tensor([[3.0, 1.0, 0.0]]), zero)
    assert at_half.ok and at_half.warning and "2 rounding flip(s) at .5" in at_half.note
    genuine = compare_symbols("x", "q", value, zero, torch.tensor([[3.0, 2.0, -1.0]]), zero)
    assert not genuine.ok and "2 symbol flip(s), 1 not at .5" in genuine.note and "(0, 1)" in genuine.note


def test_an_unknown_recorded_layout_is_a_clear_error(fixtures, tmp_path):
    _copy_variant(fixtures, tmp_path, "xparam")
    raw = json.loads((tmp_path / "xparam_config.json").read_text())
    raw["input"]["memory_format"] = "nhwc"
    (tmp_path / "xparam_config.json").write_text(json.dumps(raw))
    result = CliRunner().invoke(main, ["cdc-verify", str(tmp_path)])
    assert result.exit_code == 2 and "memory_format" in result.output, result.output
