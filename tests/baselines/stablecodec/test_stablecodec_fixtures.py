"""Our StableCodec against the official code's outputs (fixtures/, made by fixtures/make_fixtures.py.txt from
LuizScarlet/StableCodec at e7994cf on CPU, tiny SD-Turbo, seeded weights in the official checkpoint layout)."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def checks():
    from baselines.stablecodec.verify import verify_dir

    return {c.name: c for c in verify_dir(FIXTURES)}


def test_every_check_is_within_its_tolerance(checks):
    failed = [c for c in checks.values() if not c.ok]
    assert not failed, failed


def test_bytes_and_quantised_latents_are_exact(checks):
    for name in ("y string (encoder)", "z string (encoder)", "z_hat (decoded)"):
        assert checks[name].ok and checks[name].tolerance == 0.0 and checks[name].max_abs_diff == 0.0, checks[name]


def test_the_official_layout_is_what_we_load(checks):
    assert all(checks[f"checkpoint layout {p}"].ok for p in ("state_dict_vae", "state_dict_unet",
                                                             "state_dict_codec", "elic g_a"))


def test_a_wrong_fixture_directory_is_a_clear_error(tmp_path):
    from baselines.stablecodec.verify import VerifyError, verify_dir

    with pytest.raises(VerifyError, match="expected.pt is missing"):
        verify_dir(tmp_path)


def test_the_comparisons_can_fail():
    """A flipped byte or a value beyond tolerance is reported, not hidden."""
    import torch

    from baselines.stablecodec.verify import _compare, _same_bytes

    assert not _same_bytes("s", b"abcd", b"abce").ok and _same_bytes("s", b"abcd", b"abcd").ok
    assert not _same_bytes("s", b"abc", b"abcd").ok
    assert not _compare("t", torch.zeros(3), torch.tensor([0.0, 0.0, 2.0]), 1.0).ok
    assert _compare("t", torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]), 1.0).ok
    assert not _compare("t", torch.zeros(3), torch.zeros(4), 1.0).ok


def test_the_command_exits_2_on_a_directory_that_is_not_fixtures(tmp_path):
    from click.testing import CliRunner

    from cdc_bench.cli import main

    result = CliRunner().invoke(main, ["stablecodec-verify", str(tmp_path)])
    assert result.exit_code == 2 and "expected.pt is missing" in result.output
