"""Pre-flight and command-line validation, as a user meets them: `cdc-bench run` stops before any work, exit 2.

Toy codecs registered here play a codec whose dependency is missing and one whose weight files are absent; the
weight files they declare point into the test's temporary folder.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cdc_bench import weights
from cdc_bench.sweep import preflight
from cdc_bench.cli import main
from cdc_bench.codecs.base import Availability, Codec
from cdc_bench.codecs.registry import create_codec, register, unregister
from cdc_bench.store.results import ResultsStore


class _NeedsLibrary(Codec):
    name = "toy-needs-lib"
    rate_points = (1,)

    @classmethod
    def availability(cls):
        return Availability(False, "Python package toylib is not installed", 'pip install ".[toy]"')


class _NeedsWeights(Codec):
    name = "toy-needs-weights"
    rate_points = (1, 2)

    def required_weights(self, rate_points):
        return [f"toy/model-{r}.pt" for r in rate_points] + ["toy/shared.pt"]


class _AlsoShared(Codec):
    name = "toy-also-shared"
    rate_points = (1,)

    def required_weights(self, rate_points):
        return ["toy/shared.pt"]


@pytest.fixture
def toys(tmp_path):
    files = ["toy/model-1.pt", "toy/model-2.pt", "toy/shared.pt"]
    for name in files:
        weights.register_weight(weights.WeightFile(name, f"https://example.org/{name}", tmp_path / "w" / name,
                                                   used_by=["toy-needs-weights"]))
    for cls in (_NeedsLibrary, _NeedsWeights, _AlsoShared):
        register(cls)
    yield tmp_path / "w"
    for cls in (_NeedsLibrary, _NeedsWeights, _AlsoShared):
        unregister(cls.name)
    for name in files:
        weights.WEIGHTS.unregister(name)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(root / "a.png")
    return root


def _run(*args):
    return CliRunner().invoke(main, ["run", *args], terminal_width=200)


def test_one_table_of_everything_missing_and_no_work(toys, folder, tmp_path):
    out = tmp_path / "out"
    result = _run("-d", f"folder:{folder}", "-c", "toy-needs-lib,toy-needs-weights,toy-also-shared,jpeg",
                  "--out", str(out), "--quiet")
    assert result.exit_code == 2, result.output
    text = result.output
    assert "toylib is not installed" in text and '.[toy]' in text
    for name in ("toy/model-1.pt", "toy/model-2.pt", "toy/shared.pt"):
        assert text.count(name) == 1, (name, text)  # each file named once, even when two codecs need it
    assert "cdc-bench weights --download --only" in text and "nothing was run" in text
    assert "Traceback" not in text
    assert not out.exists()  # nothing was written


def test_skip_unavailable_runs_the_rest_and_records_what_was_left_out(toys, folder, tmp_path):
    out = tmp_path / "out"
    result = _run("-d", f"folder:{folder}", "-c", "toy-needs-lib,jpeg", "-q", "50", "--out", str(out),
                  "--workers", "0", "--quiet", "--skip-unavailable")
    assert result.exit_code == 0, result.output
    assert "left out codec toy-needs-lib" in result.output
    store = ResultsStore(out)
    frame = store.frame()
    assert set(frame["codec"]) == {"jpeg"}
    skipped = store.runs()[-1]["settings"]["skipped_unavailable"]
    assert skipped[0]["name"] == "codec toy-needs-lib" and "toylib" in skipped[0]["reason"]
    store.close()
    # when nothing can run, skipping is no way out
    assert _run("-d", f"folder:{folder}", "-c", "toy-needs-lib", "--skip-unavailable").exit_code == 2


def test_present_weights_pass_and_a_mismatch_is_refused(toys, folder, tmp_path):
    import hashlib

    for name in ("toy/model-1.pt", "toy/shared.pt"):
        (toys / name).parent.mkdir(parents=True, exist_ok=True)
        (toys / name).write_bytes(b"weights")
    assert preflight.codec_problems("toy-needs-weights", rate_points=[1]) == []
    weights.get_weight("toy/shared.pt").sha256 = hashlib.sha256(b"other").hexdigest()
    try:
        problems = preflight.codec_problems("toy-needs-weights", rate_points=[1])
    finally:
        weights.get_weight("toy/shared.pt").sha256 = None
    assert [p.kind for p in problems] == ["sha256 mismatch"] and "fails its sha256" in problems[0].what


def test_metric_files_listed_once_with_their_users(tmp_path, monkeypatch, folder):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = _run("-d", f"folder:{folder}", "-c", "jpeg", "-m", "psnr,lpips-vgg,dists", "--quiet")
    assert result.exit_code == 2, result.output
    assert result.output.count("torchvision-vgg16") == 1
    assert "metric lpips-vgg, metric dists" in result.output


def test_codecs_command_shows_the_three_states(toys):
    result = CliRunner().invoke(main, ["codecs"], terminal_width=250)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert "ready" in rows["jpeg"]
    assert "dependency missing" in rows["toy-needs-lib"]
    assert "weights missing" in rows["toy-needs-weights"]
    assert preflight.codec_state("toy-needs-weights")[2] == "cdc-bench weights --download --only toy-needs-weights"
    hevc = result.output.split("│ hevc ")[1].split("├")[0]
    assert "in legends: x265 with BPG's settings" in " ".join(hevc.split())   # the name its figures use
    assert "in legends" not in result.output.split("│ jpeg ")[1].split("├")[0]   # same as its name: not repeated


def test_hific_says_tensorflow_is_missing_and_lists_its_files_once(tmp_path, monkeypatch, folder):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    if create_codec("hific").availability().ok:
        pytest.skip("TensorFlow is installed here")
    result = _run("-d", f"folder:{folder}", "-c", "hific", "--quiet")
    assert result.exit_code == 2, result.output
    assert "TensorFlow" in result.output and '.[hific]' in result.output
    for rate in ("lo", "mi", "hi"):
        assert result.output.count(f"hific/hific-{rate}.metagraph") == 1


def test_mission_command_names_tensorflow_and_each_cdc_file_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cdc = create_codec("cdc")
    files = cdc.required_weights(list(cdc.rate_points))
    from cdc_bench.codecs.registry import get_codec_class

    result = _run("--datasets", "kodak", "--codecs", "cdc,hific")
    assert result.exit_code == 2, result.output
    if get_codec_class("hific").availability().ok:  # TensorFlow here (CI's venv): its released files are missing
        assert "hific/hific-mi.metagraph" in result.output
    else:
        assert "TensorFlow" in result.output
    for name in files:
        assert result.output.count(name) == 1


# -- command-line values -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["--timeout", "0"], "'none' for no"),
    (["--timeout", "nan"], "seconds > 0"),
    (["--timeout", "-1"], "seconds > 0"),
    (["--timeout", "inf"], "seconds > 0"),
    (["--workers", "100000"], "up to"),
    (["--workers", "-1"], "up to"),
    (["--device", "bogus"], "not a device"),
    (["--fid-protocol", "bogus"], "fid256"),
    (["-c", ""], "no codec given"),
    (["-c", " , "], "no codec given"),
])
def test_bad_values_exit_2_before_any_work(args, needle, folder, tmp_path):
    out = tmp_path / "out"
    result = _run("-d", f"folder:{folder}", "--out", str(out), "--quiet", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_cuda_without_cuda_is_refused(folder):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = _run("-d", f"folder:{folder}", "--device", "cuda", "--quiet")
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_no_timeout_is_still_expressible(folder, tmp_path):
    assert preflight.parse_timeout("none") is None and preflight.parse_timeout("2.5") == 2.5
    out = tmp_path / "out"
    result = _run("-d", f"folder:{folder}", "-c", "jpeg", "-q", "50", "--timeout", "none", "--workers", "1",
                  "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    store = ResultsStore(out)
    assert store.runs()[-1]["settings"]["timeout_s"] is None and (store.frame()["status"] == "ok").all()
    store.close()


def test_cdc_steps_out_of_range_is_refused(folder):
    result = _run("-d", f"folder:{folder}", "-c", "cdc", "-o", "cdc.steps=99999", "--quiet")
    assert result.exit_code == 2 and "steps" in result.output and "Traceback" not in result.output


def test_a_run_refuses_an_inception_file_that_fails_its_sha256(tmp_path, monkeypatch, folder):
    from cdc_bench.metrics import inception

    monkeypatch.setenv("CDC_BENCH_CLEANFID_DIR", str(tmp_path))
    (tmp_path / inception.CLEANFID_FILE).write_bytes(b"planted")
    # fid-helper's verified file stands in: the run may go on, and will use that file
    assert preflight.metric_problems("fid") == []
    # with no verified file at all, the run stops before any work
    monkeypatch.setattr(inception.FIDHELPER_WEIGHT, "sha256", "0" * 64)
    out = tmp_path / "out"
    result = _run("-d", f"folder:{folder}", "-c", "jpeg", "-m", "psnr,fid", "--out", str(out), "--quiet")
    assert result.exit_code == 2, result.output
    assert "sha256 mismatch" in result.output and "planted" not in result.output and not out.exists()


def test_a_timeout_too_large_for_an_event_loop_and_a_bad_pixel_limit_fail_before_work(folder, tmp_path, monkeypatch):
    with pytest.raises(preflight.ConfigError, match="at most 2.592e\\+06"):
        preflight.parse_timeout("1e308")
    assert preflight.parse_timeout(str(preflight.MAX_TIMEOUT_S)) == preflight.MAX_TIMEOUT_S
    out = tmp_path / "out"
    result = _run("-d", f"folder:{folder}", "-c", "jpeg", "-q", "50", "--timeout", "1e308", "--executor", "dask",
                  "--out", str(out), "--quiet")
    assert result.exit_code == 2 and "at most" in result.output and "Traceback" not in result.output
    monkeypatch.setenv("CDC_BENCH_MAX_PIXELS", "abc")
    result = _run("-d", f"folder:{folder}", "-c", "jpeg", "-q", "50", "--out", str(out), "--quiet")
    assert result.exit_code == 2 and "CDC_BENCH_MAX_PIXELS='abc'" in result.output and not out.exists()


def test_resize_crop_beyond_the_pixel_limit_is_refused_up_front(folder, tmp_path, monkeypatch):
    from cdc_bench.datasets.images import ImageOptionError, Preprocess

    with pytest.raises(ImageOptionError, match="60000x60000 = 3,600,000,000 pixels per image, above the pixel limit"):
        Preprocess.parse("resize-crop:60000")
    monkeypatch.setenv("CDC_BENCH_MAX_PIXELS", "0")  # no limit: the user's choice
    assert Preprocess.parse("resize-crop:60000").size == 60000
    monkeypatch.delenv("CDC_BENCH_MAX_PIXELS")
    result = _run("-d", f"folder:{folder}", "-c", "jpeg", "-q", "50", "--preprocess", "resize-crop:60000",
                  "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 2 and "above the pixel limit" in result.output and not (tmp_path / "out").exists()
