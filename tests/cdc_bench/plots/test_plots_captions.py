"""Figure captions (what the bands are, the preprocessing, the clock and the load) and whole-number step ticks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import cdc_bench
from cdc_bench.analysis.curves import metric_spec
from cdc_bench.analysis.stats import Bootstrap
from cdc_bench.cli import main
from cdc_bench.plots import speed as speed_plot
from cdc_bench.plots import trace as trace_plot
from cdc_bench.plots.captions import caption_of, read_caption

SPEED_JSON = Path(__file__).with_name("speed_cdc_random_64px.json")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """A real jpeg sweep: 3 images, 3 rate points, under center-crop:32."""
    root = tmp_path_factory.mktemp("captions")
    folder = root / "img"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for name in "abc":
        smooth = np.cumsum(rng.integers(-8, 9, (40, 48, 3)), axis=0) + 128
        Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
    out = root / "res"
    cdc_bench.run([f"folder:{folder}"], ["jpeg"], qualities=[10, 50, 90], out=out, workers=0,
                  preprocess="center-crop:32")
    return out


def test_the_plot_caption_names_the_bootstrap_used_and_the_preprocessing(small_store, tmp_path):
    res = CliRunner().invoke(main, ["plot", str(small_store), "--metrics", "psnr", "--format", "png", "--out",
                                    str(tmp_path / "a"), "--ci", "90", "--ci-method", "BCa", "--resamples", "200"])
    assert res.exit_code == 0, res.output
    figure, = (tmp_path / "a").glob("rd_*_psnr.png")
    caption = read_caption(figure)
    assert caption and caption_of(figure) == figure.with_name(figure.name.replace(".png", ".caption.txt"))
    assert "Bands: 90% bootstrap confidence interval of the mean over images (BCa, 200 resamples" in caption
    assert "Preprocessing: center-crop:32" in caption and "3 images" in caption
    assert f"{caption_of(figure)}: {caption}" in res.output            # the command prints it too
    res = CliRunner().invoke(main, ["plot", str(small_store), "--metrics", "psnr", "--format", "png", "--out",
                                    str(tmp_path / "b"), "--no-ci"])
    assert res.exit_code == 0, res.output
    assert "No bands" in read_caption(next((tmp_path / "b").glob("rd_*_psnr.png")))


def test_the_report_puts_each_caption_under_its_figure(small_store, tmp_path):
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", str(small_store), "--out", str(out), "--metrics", "psnr",
                                    "--speed", str(SPEED_JSON)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    figcaptions = page.split("<figcaption>")[1:]
    rd = next(c for c in figcaptions if "PSNR" in c.split("</figcaption>")[0])
    assert "95% bootstrap confidence interval" in rd and "1000 resamples" in rd and "center-crop:32" in rd
    speed = next(c for c in figcaptions if "Decode time per image" in c)
    assert "wall-clock" in speed.split("</figcaption>")[0] and "machine load" in speed.split("</figcaption>")[0]


def _tick_labels(monkeypatch, module) -> list[list[str]]:
    """Record the x tick labels of every figure ``module`` saves, as drawn."""
    seen: list[list[str]] = []
    save = module.save_figure

    def recording(fig, stem, formats, caption=None):
        fig.canvas.draw()
        seen.append([t.get_text().replace("\u2212", "-") for ax in fig.axes if ax.axison
                     for t in ax.get_xticklabels() if t.get_text()])
        return save(fig, stem, formats, caption)

    monkeypatch.setattr(module, "save_figure", recording)
    return seen


def _whole(labels: list[str]) -> bool:
    return bool(labels) and all(float(t) == int(float(t)) and "." not in t for t in labels)


def test_speed_figure_has_whole_step_ticks_and_a_caption_with_clock_and_load(monkeypatch, tmp_path):
    seen = _tick_labels(monkeypatch, speed_plot)
    written = speed_plot.plot_speed([SPEED_JSON], tmp_path / "speed", ["png"])
    assert all(_whole(labels) for labels in seen) and seen
    report = json.loads(SPEED_JSON.read_text())
    caption = read_caption(written[0])
    assert "wall-clock decode time per image, median of 2 timed rounds after 1 warm-up rounds" in caption
    before = "/".join(f"{v:g}" for v in report["env"]["load_before"])
    assert f"load averages {before} at the start" in caption and "Bars: interquartile range" in caption
    measured = {**report, "load": {"cores": 2, "peak_1min": 7.5, "busy": True, "samples": [7.5]}}
    assert "up to 7.5 on 2 cores (busy" in speed_plot.speed_caption([measured])
    assert "not recorded" in speed_plot.speed_caption([{k: v for k, v in report.items() if k != "env"}])


def _trace_frame() -> pd.DataFrame:
    """Hand-made rows of one codec traced over steps 1, 2, 4 (two images, one rate point)."""
    rows = []
    for steps in (1, 2, 4):
        for i, image in enumerate(("a", "b")):
            rows.append({"dataset": "toy", "image": image, "codec": "cdc", "options": json.dumps({"steps": steps}),
                         "quality": "0.1", "preprocess": "resize-crop:64", "device": "cpu", "status": "ok",
                         "bpp": 0.2 + 0.01 * i, "psnr": 20.0 + steps + i, "decode_s": 0.1 * steps + 0.01 * i})
    return pd.DataFrame(rows)


def test_trace_figure_has_whole_step_ticks_and_names_band_clock_and_preprocessing(monkeypatch, tmp_path):
    seen = _tick_labels(monkeypatch, trace_plot)
    boot = Bootstrap(0.95, "percentile", 100, 0)
    written = trace_plot.plot_trace(_trace_frame(), [metric_spec("psnr")], "cdc.steps", tmp_path, ["png"], 3.3,
                                    boot=boot)
    assert seen and all(_whole(labels) for labels in seen)
    caption = read_caption(written[0])
    assert "95% bootstrap confidence interval of the mean over images (percentile, 100 resamples" in caption
    assert "Preprocessing: resize-crop:64" in caption and "wall clock" in caption and "steps" in caption
    assert "machine load: not recorded" in caption   # hand-made rows: no sweep, no manifest


def test_trace_caption_states_the_load_its_sweeps_recorded(tmp_path):
    frame = _trace_frame().assign(run_id=["r1"] * 4 + ["r2"] * 2)
    runs = [{"run_id": "r1", "settings": {"workers": 2}, "load": {"cores": 2, "peak_1min": 1.5, "busy": False}},
            {"run_id": "r2", "settings": {"workers": 2}, "load": {"cores": 2, "peak_1min": 3.25, "busy": True}},
            {"run_id": "other", "load": {"cores": 2, "peak_1min": 99.0}}]   # not behind these rows
    caption = read_caption(trace_plot.plot_trace(frame, [metric_spec("psnr")], "cdc.steps", tmp_path / "a",
                                                 ["png"], 3.3, runs=runs)[0])
    assert "1-minute load average up to 3.25 on 2 cores, its own 2 worker(s) included (busy" in caption
    caption = read_caption(trace_plot.plot_trace(frame, [metric_spec("psnr")], "cdc.steps", tmp_path / "b",
                                                 ["png"], 3.3, runs=[runs[0], {"run_id": "r2"}])[0])
    assert "up to 1.5 on 2 cores" in caption and "busy" not in caption and "not recorded for 1 older sweep" in caption


def test_a_sweep_records_the_machine_load_in_its_manifest(small_store):
    manifest = cdc_bench.load(small_store).runs[-1]
    load = manifest["load"]
    assert load["cores"] >= 1 and len(load["samples"]) >= 2 and load["peak_1min"] == max(load["samples"])


def test_rdp_caption_names_each_axis_interval_and_the_preprocessing(tmp_path):
    frame = _trace_frame().assign(lpips=lambda f: 0.5 - 0.01 * f["psnr"])
    written = trace_plot.plot_rdp(frame, [metric_spec("psnr"), metric_spec("lpips")], "cdc.steps", tmp_path,
                                  ["png"], 3.3, boot=Bootstrap(0.9, "percentile", 50, 1))
    caption = read_caption(written[0])
    assert "Error bars of PSNR: 90% bootstrap confidence interval of the mean over images (percentile, 50" in caption
    assert f"Error bars of {metric_spec('lpips').label}: 90%" in caption and "Preprocessing: resize-crop:64" in caption


def test_per_image_caption_says_what_dots_and_boxes_are(tmp_path):
    from cdc_bench.plots.perimage import plot_per_image

    tidy = pd.DataFrame([{"dataset": "toy", "anchor": "jpeg", "codec": "webp", "metric": "psnr",
                          "metric_label": "PSNR", "image": image, "bd_rate_pct": value}
                         for image, value in (("a", -5.0), ("b", 3.0), ("c", -1.0))])
    written = plot_per_image(tidy, tmp_path / "per", ["png"], preprocess=["center-crop:256"])
    caption = read_caption(written[0])
    assert "one dot per image (3 images" in caption and "box: quartiles and median" in caption
    assert "Preprocessing: center-crop:256" in caption and "against jpeg" in caption
