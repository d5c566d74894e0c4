"""Tests of the speed benchmark library: fits, statistics, memory sampling, the run loop, compare, reports, figure.

Timings are never asserted: only structure, bookkeeping and the logic applied to known (synthetic) numbers.
"""

from __future__ import annotations

import json
import mmap
import struct
import time
import zlib

import numpy as np
import pytest
import torch

from cdc_bench.codec import Availability, BitstreamError, Codec, CodecUnavailable, check_image
from cdc_bench.codecs import register
from cdc_bench.speed import (SCHEMA, PeakRSS, SpeedConfig, SpeedError, SpeedReportError, compare_reports, fit_linear,
                             load_report, mismatches, parse_size, parse_sizes, parse_steps, run_speed, save_report,
                             soft_differences, summarize, synthetic_image)
from cdc_bench.speed.bench import RANDOM_NOTE
from cdc_bench.speed.plot import plot_speed
from cdc_bench.weights import WeightFile, WeightsMissing, get_weight, register_weight

HEADER = struct.Struct(">HHB")


class ConvStackCodec(Codec):
    """A small real codec whose decoder runs a conv stack ``steps`` times, like a diffusion sampler.

    Encode: subsample by the rate factor, zlib-compress. Decode: inflate, upsample with torch, then refine
    ``steps`` times with a fixed random conv stack (real work that grows with steps).
    """

    name = "speedtoy"
    rate_label = "subsampling factor"
    rate_points = (2, 4)
    settings = {"steps": 4, "channels": 8}

    def __init__(self, options=None, device="cpu"):
        super().__init__(options, device)
        gen = torch.Generator().manual_seed(0)
        c = self.options["channels"]
        self.w1 = torch.randn(c, 3, 3, 3, generator=gen) * 0.1
        self.w2 = torch.randn(3, c, 3, 3, generator=gen) * 0.1
        self.steps_run = 0

    def validate_options(self) -> None:
        if self.options["steps"] < 1:
            raise ValueError("steps must be >= 1")

    def encode(self, image: np.ndarray, rate) -> bytes:
        check_image(image)
        factor = int(rate)
        small = np.ascontiguousarray(image[::factor, ::factor])
        return HEADER.pack(image.shape[0], image.shape[1], factor) + zlib.compress(small.tobytes())

    def decode(self, data: bytes) -> np.ndarray:
        if len(data) < HEADER.size:
            raise BitstreamError(f"{len(data)} bytes is shorter than the {HEADER.size}-byte header")
        h, w, factor = HEADER.unpack_from(data)
        try:
            raw = zlib.decompress(data[HEADER.size:])
        except zlib.error as err:
            raise BitstreamError(f"corrupt payload: {err}") from None
        small = np.frombuffer(raw, np.uint8).reshape(-(-h // factor), -(-w // factor), 3)
        x = torch.from_numpy(small.copy()).permute(2, 0, 1)[None].float() / 255
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        self.steps_run = 0
        for _ in range(self.options["steps"]):
            hidden = torch.relu(torch.nn.functional.conv2d(x, self.w1, padding=1))
            x = x + 0.01 * torch.tanh(torch.nn.functional.conv2d(hidden, self.w2, padding=1))
            self.steps_run += 1
        return (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()

    def extra_metrics(self):
        return {"steps_run": self.steps_run}


class FlatCodec(Codec):
    """A one-point codec (no steps option): zlib on the raw pixels."""

    name = "speedtoy-flat"
    rate_points = (6,)
    settings = {}

    def encode(self, image, rate):
        return HEADER.pack(image.shape[0], image.shape[1], int(rate)) + zlib.compress(image.tobytes(), int(rate))

    def decode(self, data):
        h, w, _ = HEADER.unpack_from(data)
        return np.frombuffer(zlib.decompress(data[HEADER.size:]), np.uint8).reshape(h, w, 3).copy()


class CheckpointCodec(ConvStackCodec):
    """Like CDC: ``weights=released`` needs a checkpoint that is not here; ``weights=random`` always works."""

    name = "speedtoy-ckpt"
    settings = {"steps": 2, "channels": 4, "weights": "released"}

    @classmethod
    def availability(cls):
        return Availability(False, "checkpoint toy.pt not found", "download it")

    def validate_options(self):
        if self.options["weights"] == "released":
            raise CodecUnavailable("checkpoint toy.pt not found in the cache", "cdc-bench weights fetch")


class DeclaredWeightsCodec(ConvStackCodec):
    """Like CDC: ``required_weights`` names a registered weight file; released weights load it at encode time."""

    name = "speedtoy-declared"
    settings = {"steps": 2, "channels": 4, "weights": "released"}

    def required_weights(self, rate_points):
        return [] if self.options["weights"] == "random" else ["speedtoy-declared.pt"]

    def encode(self, image, rate):
        if self.options["weights"] == "released":
            get_weight("speedtoy-declared.pt").ensure(allow_download=False)
        return super().encode(image, rate)


class DownloadFailsCodec(ConvStackCodec):
    """Released weights are fetched lazily at the first encode, and the fetch fails (offline)."""

    name = "speedtoy-offline"
    settings = {"steps": 2, "channels": 4, "weights": "released"}

    def encode(self, image, rate):
        if self.options["weights"] == "released":
            raise WeightsMissing("weight file toy-offline.pt is missing: download http://x/toy.pt to /nowhere")
        return super().encode(image, rate)


CALLS: list[tuple[str, int]] = []


class LoggingCodec(ConvStackCodec):
    """Records the order of its calls, to check how the run loop schedules them."""

    name = "speedtoy-log"

    def encode(self, image, rate):
        CALLS.append(("encode", self.options["steps"]))
        return super().encode(image, rate)

    def decode(self, data):
        CALLS.append(("decode", self.options["steps"]))
        return super().decode(data)


class WrongShapeCodec(ConvStackCodec):
    name = "speedtoy-wrong"

    def decode(self, data):
        return super().decode(data)[:-1]


for _cls in (ConvStackCodec, FlatCodec, CheckpointCodec, DeclaredWeightsCodec, DownloadFailsCodec, LoggingCodec,
             WrongShapeCodec):
    register(_cls)


# --- fit -----------------------------------------------------------------------------------------------------

def test_fit_recovers_known_fixed_and_per_step_cost():
    steps = [1, 2, 4, 8, 16, 32, 65]
    fit = fit_linear(steps, [0.3 + 0.05 * s for s in steps])
    assert fit.a == pytest.approx(0.3, abs=1e-9)
    assert fit.b == pytest.approx(0.05, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.linear is True and fit.n == 7
    assert fit.b_stderr == pytest.approx(0.0, abs=1e-9)


def test_fit_tolerates_small_noise():
    steps = np.array([1, 2, 4, 8, 16])
    noise = np.array([0.01, -0.01, 0.005, -0.005, 0.0])  # +-1% of the time
    times = (2.0 + 0.5 * steps) * (1 + noise)
    fit = fit_linear(steps, times)
    assert fit.linear is True
    assert fit.b == pytest.approx(0.5, rel=0.03)
    assert fit.max_rel_residual < 0.02


def test_fit_flags_quadratic_growth():
    steps = [1, 2, 4, 8, 16, 32]
    fit = fit_linear(steps, [0.1 + 0.01 * s * s for s in steps])
    assert fit.linear is False
    assert fit.note.startswith("NOT LINEAR")
    assert fit.max_rel_residual > 0.10


def test_fit_flags_a_single_outlier_by_its_residual():
    steps = [1, 2, 4, 8, 16]
    times = [1 + s for s in steps]
    times[1] *= 1.5  # one point 50% high: R² stays high, the relative residual does not
    fit = fit_linear(steps, times)
    assert fit.linear is False and "residual" in fit.note


def test_fit_does_not_judge_r2_when_time_does_not_depend_on_steps():
    steps = [1, 2, 4, 8, 16]
    times = [1.00, 1.01, 0.99, 1.005, 0.995]  # flat: R² is noise, residuals are tiny
    fit = fit_linear(steps, times)
    assert fit.r2 < 0.99
    assert fit.linear is True and "hardly depends" in fit.note


def test_fit_two_points_is_exact_and_unjudged_one_point_is_none():
    fit = fit_linear([1, 3], [2.0, 4.0])
    assert (fit.a, fit.b, fit.linear) == (pytest.approx(1.0), pytest.approx(1.0), None)
    assert fit_linear([4], [1.0]) is None
    assert fit_linear([4, 4], [1.0, 1.1]) is None
    with pytest.raises(ValueError):
        fit_linear([1, 2], [1.0])


# --- statistics, memory, parsing ---------------------------------------------------------------------------

def test_summarize_median_quartiles_and_range():
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median"], s["q1"], s["q3"], s["iqr"], s["min"], s["max"], s["n"]) == (3, 2, 4, 2, 1, 5, 5)
    assert s["times"] == [5.0, 1.0, 3.0, 2.0, 4.0]
    with pytest.raises(ValueError):
        summarize([])


def _fresh_pages(size: int) -> mmap.mmap:
    """``size`` bytes of newly mapped, written memory: new resident pages whatever the allocator already holds
    (a malloc'd block could reuse pages an earlier test left resident, and then RSS would not rise)."""
    buf = mmap.mmap(-1, size)
    np.frombuffer(buf, dtype=np.uint8)[:] = 1
    return buf


def test_peak_rss_sees_a_transient_allocation():
    size = 200 * 1024 * 1024
    with PeakRSS() as mem:
        block = _fresh_pages(size)
        deadline = time.monotonic() + 10
        # wait (bounded) until the sampler thread has run while the block was alive, then free it
        while mem.peak_bytes - mem.baseline_bytes < 0.75 * size and time.monotonic() < deadline:
            time.sleep(0.01)
        block.close()
    assert mem.peak_bytes - mem.baseline_bytes >= 0.75 * size


def test_peak_rss_counts_memory_still_held_at_exit():
    with PeakRSS(interval=60) as mem:  # the thread never samples: only the exit sample can see it
        block = _fresh_pages(100 * 1024 * 1024)
    block.close()
    assert mem.peak_mib - mem.baseline_mib >= 75


def test_parse_size_steps():
    assert parse_size("768x512") == (768, 512)
    assert parse_sizes("256x256, 768X512") == [(256, 256), (768, 512)]
    assert parse_steps("1,2,4,65") == [1, 2, 4, 65]
    for bad in ("768", "0x5", "ax4", "-1x4"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            parse_size(bad)
    for bad in ("0,1", "a", "", "2,2"):
        with pytest.raises(ValueError):
            parse_steps(bad)


def test_synthetic_image_is_deterministic_and_textured():
    a, b = synthetic_image(48, 32), synthetic_image(48, 32)
    assert a.shape == (32, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert a.std() > 20


# --- the run loop --------------------------------------------------------------------------------------------

def test_run_speed_measures_every_size_and_step_count():
    config = SpeedConfig("speedtoy", steps=[1, 3, 6], sizes=[(32, 24), (16, 16)], repeats=2, warmup=1)
    report = run_speed(config)
    assert report["schema"] == SCHEMA and report["codec"] == "speedtoy"
    assert [(r["width"], r["height"], r["steps"]) for r in report["rows"]] == [
        (32, 24, 1), (32, 24, 3), (32, 24, 6), (16, 16, 1), (16, 16, 3), (16, 16, 6)]
    for row in report["rows"]:
        assert row["codec_info"] == {"steps_run": row["steps"]}  # the decoder really ran that many steps
        assert row["encode"]["n"] == row["decode"]["n"] == 2
        assert row["decode"]["min"] <= row["decode"]["median"] <= row["decode"]["max"]
        assert row["bytes"] > HEADER.size
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (row["width"] * row["height"]))
        assert row["memory"]["decode_peak_rss_mib"] >= row["memory"]["rss_before_mib"] > 0
        assert row["memory"]["decode_cuda_max_allocated_mib"] is None
    assert report["rate"] == 4  # the middle of (2, 4)
    assert report["options"] == {"channels": 8}
    env = report["env"]
    for key in ("device", "device_name", "dtype", "threads", "torch", "numpy", "python", "git_commit", "created"):
        assert key in env
    assert env["device"] == "cpu" and env["dtype"] == "float32"
    assert report["settings"]["sizes"] == ["32x24", "16x16"] and report["settings"]["steps"] == [1, 3, 6]
    fits = {(f["width"], f["height"], f["phase"]) for f in report["fits"]}
    assert fits == {(32, 24, "encode"), (32, 24, "decode"), (16, 16, "encode"), (16, 16, "decode")}
    assert not report["random_weights"]
    json.dumps(report)  # JSON-ready as returned


def test_timed_rounds_interleave_step_counts_after_the_warm_up():
    CALLS.clear()
    run_speed(SpeedConfig("speedtoy-log", steps=[1, 3], sizes=[(8, 8)], repeats=2, warmup=1))
    warm = [("encode", 1), ("decode", 1), ("encode", 3), ("decode", 3)]
    assert CALLS == warm + warm * 2  # warm-up for each step count, then round after round over all of them


def test_run_speed_default_steps_threads_and_rate():
    report = run_speed(SpeedConfig("speedtoy", options={"steps": "3"}, sizes=[(16, 8)], repeats=1, warmup=0,
                                   threads=1, rate="2"))
    assert [r["steps"] for r in report["rows"]] == [3]
    assert report["env"]["threads"] == 1 and report["rate"] == 2
    assert report["fits"] == []
    assert report["env"]["packages"]["torch"] and report["env"]["packages"]["compressai"] == "1.2.8"


def test_run_speed_restores_the_thread_count():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    report = run_speed(SpeedConfig("speedtoy", sizes=[(8, 8)], repeats=1, warmup=0, threads=target))
    assert report["env"]["threads"] == target
    assert torch.get_num_threads() == before


def test_one_point_codec_gives_one_row_per_size():
    report = run_speed(SpeedConfig("speedtoy-flat", steps=[1, 2, 4], sizes=[(16, 16), (24, 8)], repeats=2))
    assert [(r["steps"], r["width"]) for r in report["rows"]] == [(None, 16), (None, 24)]
    assert report["steps_option"] is False and report["fits"] == []
    assert any("no 'steps' option" in n for n in report["notes"])


def test_missing_checkpoint_falls_back_to_random_weights_and_says_so():
    report = run_speed(SpeedConfig("speedtoy-ckpt", steps=[1, 2], sizes=[(16, 16)], repeats=1))
    assert report["weights"] == "random" and report["random_weights"] is True
    assert report["options"]["weights"] == "random"
    assert any("speedtoy-ckpt.weights=random" in n for n in report["notes"])
    assert RANDOM_NOTE in report["notes"]


def test_absent_declared_weights_mean_random_weights_without_a_download(tmp_path):
    where = tmp_path / "speedtoy-declared.pt"
    register_weight(WeightFile("speedtoy-declared.pt", "http://127.0.0.1:9/none.pt", where))
    report = run_speed(SpeedConfig("speedtoy-declared", sizes=[(16, 16)], repeats=1))
    assert report["random_weights"] is True
    assert any(str(where) in n and "not found" in n for n in report["notes"])
    where.write_bytes(b"present")  # now the released weights are there: they are used
    report = run_speed(SpeedConfig("speedtoy-declared", sizes=[(16, 16)], repeats=1))
    assert report["weights"] == "released" and report["random_weights"] is False


def test_failed_download_at_first_encode_falls_back_to_random_weights():
    report = run_speed(SpeedConfig("speedtoy-offline", steps=[1, 2], sizes=[(16, 16)], repeats=1))
    assert report["random_weights"] is True and len(report["rows"]) == 2
    assert any("toy-offline.pt is missing" in n for n in report["notes"])
    with pytest.raises(SpeedError, match="WeightsMissing: weight file toy-offline.pt"):
        run_speed(SpeedConfig("speedtoy-offline", options={"weights": "released"}, sizes=[(16, 16)], repeats=1))


def test_explicit_released_weights_are_not_replaced():
    with pytest.raises(SpeedError, match="unavailable.*toy.pt"):
        run_speed(SpeedConfig("speedtoy-ckpt", options={"weights": "released"}, sizes=[(16, 16)], repeats=1))


def test_run_speed_rejects_bad_requests():
    with pytest.raises(SpeedError, match="steps given twice"):
        run_speed(SpeedConfig("speedtoy", options={"steps": "2"}, steps=[1, 2], sizes=[(8, 8)]))
    with pytest.raises(SpeedError, match="repeats"):
        run_speed(SpeedConfig("speedtoy", sizes=[(8, 8)], repeats=0))
    with pytest.raises(SpeedError, match="rate 'x'"):
        run_speed(SpeedConfig("speedtoy", sizes=[(8, 8)], rate="x"))
    with pytest.raises(SpeedError, match=r"16x16, steps=1: decode returned \(15, 16, 3\)"):
        run_speed(SpeedConfig("speedtoy-wrong", steps=[1], sizes=[(16, 16)], repeats=1))


# --- compare and reports -----------------------------------------------------------------------------------

def _report(medians: dict[tuple[int, int, int | None], float], **env) -> dict:
    base_env = {"device": "cpu", "device_name": "cpu-x", "dtype": "float32", "threads": 2}
    rows = [{"width": w, "height": h, "steps": s,
             "encode": {"median": 0.1}, "decode": {"median": m}} for (w, h, s), m in medians.items()]
    sizes = sorted({f"{w}x{h}" for w, h, _ in medians})
    return {"schema": SCHEMA, "codec": "cdc", "options": {"gamma": 0.8}, "rate": 0.0032,
            "env": {**base_env, **env}, "settings": {"sizes": sizes}, "rows": rows, "fits": []}


def test_compare_ratios_and_regression_verdict():
    old = _report({(64, 64, 1): 1.0, (64, 64, 2): 2.0, (64, 64, 4): 4.0})
    new = _report({(64, 64, 1): 1.05, (64, 64, 2): 2.5, (64, 64, 8): 8.0})
    comp = compare_reports(old, new, max_slowdown=1.10)
    decode = {r.steps: r for r in comp.rows if r.phase == "decode"}
    assert set(decode) == {1, 2}
    assert decode[1].ratio == pytest.approx(1.05) and not decode[1].regressed
    assert decode[2].ratio == pytest.approx(1.25) and decode[2].regressed
    assert comp.regressed and comp.worst.steps == 2
    assert comp.only_old == [(64, 64, 4)] and comp.only_new == [(64, 64, 8)]
    assert not compare_reports(old, new, max_slowdown=1.3).regressed


def test_compare_one_point_rows_match_on_none_steps():
    comp = compare_reports(_report({(16, 16, None): 1.0}), _report({(16, 16, None): 0.5}), 1.1)
    assert [(r.steps, r.phase, r.ratio) for r in comp.rows] == [(None, "encode", 1.0), (None, "decode", 0.5)]


def test_mismatches_name_what_differs():
    old = _report({(64, 64, 1): 1.0})
    assert mismatches(old, _report({(64, 64, 1): 2.0})) == []
    assert mismatches(old, _report({(64, 64, 1): 1.0}, device="cuda", device_name="H100")) == [
        "device: cpu vs cuda", "device_name: cpu-x vs H100"]
    assert mismatches(old, _report({(64, 64, 1): 1.0}, dtype="float16")) == ["dtype: float32 vs float16"]
    assert mismatches(old, _report({(64, 64, 1): 1.0}, threads=8)) == ["threads: 2 vs 8"]
    assert mismatches(old, _report({(128, 64, 1): 1.0})) == ["sizes: 64x64 vs 128x64"]
    other = {**_report({(64, 64, 1): 1.0}), "codec": "cdc-eps", "rate": 0.1}
    assert mismatches(old, other) == ["codec: cdc vs cdc-eps"]
    assert soft_differences(old, other) == ["rate: 0.0032 vs 0.1"]


def test_report_round_trip_and_clear_errors(tmp_path):
    report = _report({(64, 64, 1): 1.0})
    path = save_report(report, tmp_path / "sub" / "speed.json")
    assert load_report(path) == report
    with pytest.raises(SpeedReportError, match="missing.json: no such file"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpeedReportError, match="bad.json: not a readable JSON"):
        load_report(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({**report, "schema": "something-else"}))
    with pytest.raises(SpeedReportError, match="report format 'something-else'"):
        load_report(tmp_path / "other.json")
    (tmp_path / "norows.json").write_text(json.dumps({"schema": SCHEMA}))
    with pytest.raises(SpeedReportError, match="missing codec, env, settings, rows"):
        load_report(tmp_path / "norows.json")


def test_plot_writes_a_one_page_pdf_and_a_png(tmp_path):
    from pypdf import PdfReader

    report = run_speed(SpeedConfig("speedtoy", steps=[1, 2, 3], sizes=[(16, 16)], repeats=1, warmup=0))
    pdf = plot_speed(report, tmp_path / "speed.pdf")
    assert len(PdfReader(pdf).pages) == 1
    flat = run_speed(SpeedConfig("speedtoy-flat", sizes=[(16, 16)], repeats=1, warmup=0))
    png = plot_speed(flat, tmp_path / "flat.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
