"""Tests of ``cdc-bench speed``: the report it writes, exit codes of --compare, refusals and bad input.

A small real codec (zlib bitstream, torch conv stack run ``steps`` times in decode) stands in for CDC, so the
tests run in seconds; no timing is asserted. Comparisons use saved reports scaled by huge factors, so the verdict
does not depend on how fast this machine happens to be. The load average is fixed (``quiet`` fixture) except
where a test sets it, so the shared machine's load does not change what is printed.
"""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cdc_bench.cli import main
from cdc_bench.codecs.base import BitstreamError, Codec, Option
from cdc_bench.codecs.registry import register

HEADER = struct.Struct(">HH")


@register
class StepConvCodec(Codec):
    """zlib on the pixels; the decoder then runs a fixed conv ``steps`` times (work that grows with steps)."""

    name = "speedtoy-cmd"
    rate_points = (1, 6, 9)
    option_specs = {"steps": Option(2)}

    def _encode(self, image: np.ndarray, rate) -> bytes:
        return HEADER.pack(*image.shape[:2]) + zlib.compress(image.tobytes(), int(rate))

    def _decode(self, data: bytes) -> np.ndarray:
        if len(data) < HEADER.size:
            raise BitstreamError("truncated header")
        h, w = HEADER.unpack_from(data)
        img = np.frombuffer(zlib.decompress(data[HEADER.size:]), np.uint8).reshape(h, w, 3)
        x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float()
        kernel = torch.full((3, 1, 3, 3), 1 / 9)
        for _ in range(self.options["steps"]):
            x = 0.5 * x + 0.5 * torch.nn.functional.conv2d(x, kernel, padding=1, groups=3)
        return x[0].permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy()


BASE = ["speed", "--codec", "speedtoy-cmd", "--size", "16x16", "--repeats", "2", "--warmup", "0"]


def _invoke(*args):
    return CliRunner().invoke(main, [*BASE, *args], catch_exceptions=False)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "old.json"
    result = _invoke("--steps", "1,2,3", "--out", str(path))
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))


def _scaled(path, factor, tmp_path, **env):
    report = json.loads(path.read_text())
    for phase, rows in (("encode", report["encode"]), ("decode", report["rows"])):
        for row in rows:
            for clock in ("", "_cpu"):
                summary = row[phase + clock]
                summary["median"] *= factor
                summary["times"] = [t * factor for t in summary["times"]]
    report["env"].update(env)
    out = tmp_path / f"scaled-{factor:g}.json"
    out.write_text(json.dumps(report))
    return out


def test_logs_each_timed_round_unless_quiet():
    result = _invoke("--steps", "1,2")
    assert result.exit_code == 0, result.output
    assert "speedtoy-cmd at 16x16: round 2/2: encode" in result.output
    result = _invoke("--steps", "1,2", "--quiet")
    assert result.exit_code == 0 and "round 1/2" not in result.output


def test_writes_report_with_rows_fit_and_environment(saved):
    report = json.loads(saved.read_text())
    assert [r["steps"] for r in report["rows"]] == [1, 2, 3]
    assert [(e["width"], e["encode"]["n"]) for e in report["encode"]] == [(16, 2)]  # once per size
    assert report["settings"]["repeats"] == 2 and report["settings"]["sizes"] == ["16x16"]
    assert report["rate"] == 6
    assert {(f["phase"], f["clock"]) for f in report["fits"]} == {("decode", "wall"), ("decode", "cpu")}
    assert report["env"]["device"] == "cpu" and report["env"]["dtype"] == "float32"


def test_prints_tables_and_plots(tmp_path):
    from pypdf import PdfReader

    result = _invoke("--steps", "1,2,4", "--plot", str(tmp_path / "speed.pdf"))
    assert result.exit_code == 0, result.output
    assert "decode time = a + b·steps" in result.output and "wall÷steps" in result.output
    assert "encode time per image (once per size" in result.output
    assert len(PdfReader(tmp_path / "speed.pdf").pages) == 1
    assert "figure written to" in result.output


def test_single_step_png_plot_and_bad_plot_name(tmp_path):
    result = _invoke("--plot", str(tmp_path / "one.png"), "-o", "speedtoy-cmd.steps=3")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "one.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = _invoke("--plot", str(tmp_path / "speed.txt"))
    assert result.exit_code == 2 and "use a .pdf, .png or .svg" in result.output


def test_compare_exits_1_on_slowdown_and_0_otherwise(saved, tmp_path):
    fast_old = _scaled(saved, 1e-6, tmp_path)  # the saved run was a million times faster: a regression
    out = tmp_path / "new.json"
    result = _invoke("--steps", "1,2,3", "--compare", str(fast_old), "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "regression" in result.output and "SLOWER" in result.output and "95% interval" in result.output
    comparison = json.loads(out.read_text())["comparison"]
    assert comparison["regressed"] and comparison["clock"] == "cpu"
    assert [r["phase"] for r in comparison["rows"]] == ["encode", "decode"]
    assert comparison["rows"][1]["steps"] == [1, 2, 3] and comparison["rows"][1]["interval"]["low"] > 100
    slow_old = _scaled(saved, 1e6, tmp_path)
    result = _invoke("--steps", "1,2,3", "--compare", str(slow_old), "--max-slowdown", "1.05")
    assert result.exit_code == 0, result.output
    assert "no regression" in result.output and "lower bound <= 1.05" in result.output


def test_busy_machine_warns_and_strict_refuses_with_exit_3(monkeypatch, saved, tmp_path):
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    result = _invoke("--steps", "1,2")
    assert result.exit_code == 0, result.output
    assert "warning: load average 64.00 exceeded" in result.output
    result = _invoke("--steps", "1,2,3", "--strict", "--compare", str(_scaled(saved, 1e6, tmp_path)))
    assert result.exit_code == 3, result.output
    assert "refusing to measure (--strict, at the start)" in result.output and "round 1/" not in result.output


def test_injected_slowdown_is_reported(monkeypatch, saved):
    monkeypatch.setenv("CDC_BENCH_TEST_SLOWDOWN", "1.2")
    monkeypatch.setenv("CDC_BENCH_TEST_SLOWDOWN_TARGET", f"{__name__}:StepConvCodec._decode")
    result = _invoke("--steps", "1")
    assert result.exit_code == 0 and "TEST HOOK" in result.output
    monkeypatch.setenv("CDC_BENCH_TEST_SLOWDOWN", "x")
    result = _invoke("--steps", "1")
    assert result.exit_code == 2 and "expected a factor >= 1" in result.output


def test_compare_uses_common_step_counts_only(saved, tmp_path):
    result = _invoke("--steps", "2,5", "--compare", str(_scaled(saved, 1e6, tmp_path)))
    assert result.exit_code == 0, result.output
    assert "not in both runs" in result.output
    result = _invoke("--steps", "7", "--compare", str(saved))
    assert result.exit_code == 2 and "no (size, steps) point measured in both" in result.output


def test_compare_refuses_other_sizes_before_measuring(saved):
    result = _invoke("--size", "32x16", "--steps", "1", "--compare", str(saved))
    assert result.exit_code == 2
    assert "refusing to compare" in result.output and "sizes: 16x16 vs 32x16" in result.output
    assert "measuring" not in result.output  # refused up front: no minutes wasted
    result = CliRunner().invoke(main, [*BASE, "--device", "cuda", "--compare", str(saved)])
    # without CUDA, --device cuda is refused by the device parser even before the comparison is looked at
    assert result.exit_code == 2 and ("device: cpu vs cuda" in result.output or "CUDA is not available" in result.output)


def test_compare_refuses_other_dtype_unless_allowed(saved, tmp_path):
    other = _scaled(saved, 1e6, tmp_path, dtype="float16")
    result = _invoke("--steps", "1,2,3", "--compare", str(other))
    assert result.exit_code == 2 and "dtype: float16 vs float32" in result.output
    result = _invoke("--steps", "1,2,3", "--compare", str(other), "--allow-mismatch")
    assert result.exit_code == 0, result.output
    assert "--allow-mismatch" in result.output and "no regression" in result.output


@pytest.mark.parametrize("args, message", [
    (["--steps", "0,1"], "positive integers"),
    (["--size", "16"], "WIDTHxHEIGHT"),
    (["-o", "jpeg.quality=5"], "options given for jpeg"),
    (["-o", "speedtoy-cmd.nosuch=1"], "has no option nosuch"),
    (["--max-slowdown", "0"], "--max-slowdown must be a positive finite number"),
    (["--repeats", "0"], "--repeats must be at least 1"),
])
def test_bad_input_exits_2_with_a_clear_message(args, message):
    result = _invoke(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_codec_and_missing_compare_file(tmp_path):
    result = CliRunner().invoke(main, ["speed", "--codec", "speedtoy-cmx"])
    assert result.exit_code == 2 and "Did you mean speedtoy-cmd" in result.output
    result = _invoke("--compare", str(tmp_path / "nope.json"))
    assert result.exit_code == 2 and "nope.json: no such file" in result.output


def test_one_point_codec_jpeg(tmp_path):
    out = tmp_path / "jpeg.json"
    result = CliRunner().invoke(main, ["speed", "-c", "jpeg", "--size", "32x32", "--repeats", "1",
                                       "--steps", "1,2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert len(report["rows"]) == 1 and report["rows"][0]["steps"] is None and report["fits"] == []
    assert report["rows"][0]["bytes"] > 0
    result = CliRunner().invoke(main, ["speed", "-c", "jpeg", "--size", "32x32", "--repeats", "1",
                                       "--plot", str(tmp_path / "jpeg.png")])
    assert result.exit_code == 0, result.output
    assert "no figure written" in result.output and not (tmp_path / "jpeg.png").exists()


@pytest.mark.parametrize("codec", ["cdc", "cdc-eps"])
def test_cdc_variants_with_random_weights(tmp_path, codec):
    """Both CDC variants: the released architecture with random weights, steps really reach the sampler."""
    out = tmp_path / f"{codec}.json"
    result = CliRunner().invoke(main, ["speed", "-c", codec, "-o", f"{codec}.weights=random", "--steps", "1,2",
                                       "--size", "64x64", "--repeats", "1", "--warmup", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "random weights" in result.output
    report = json.loads(out.read_text())
    assert report["random_weights"] is True and report["weights"] == "random"
    assert report["env"]["dtype"] == "fp32"
    assert [r["codec_info"]["cdc_steps"] for r in report["rows"]] == [1, 2]  # each step count's own codec
    assert report["encode"][0]["info"]["cdc_weights"] == "random"
    assert all(r["codec_info"]["cdc_weights"] == "random" for r in report["rows"])
    assert [(f["phase"], f["clock"]) for f in report["fits"]] == [("decode", "wall"), ("decode", "cpu")]


@pytest.mark.parametrize("args, message", [
    (["--device", "weird"], "not a device"),                  # was accepted and ignored
    (["--max-slowdown", "nan"], "--max-slowdown must be a positive finite number"),   # NaN gated nothing
    (["--size", "99999x99999"], "over the input pixel limit"),          # was killed for memory with no message
])
def test_speed_bad_values_are_usage_errors_before_measuring(args, message):
    res = CliRunner().invoke(main, ["speed", "-c", "jpeg", "--repeats", "1", "--warmup", "0", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output and "measuring" not in res.output
