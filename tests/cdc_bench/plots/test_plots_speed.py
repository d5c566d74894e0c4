"""Speed figure from the speed command's JSON (real timings of a linear workload)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


from cdc_bench.plots.speed import SpeedReportError, plot_speed, read_speed  # noqa: E402


def test_reads_the_speed_schema(td, tmp_path):
    path = td.speed_json(tmp_path / "speed.json")
    report = json.loads(path.read_text())
    runs, fits = read_speed(path)
    assert list(runs["steps"]) == [2, 4, 8]
    assert list(runs["decode_s_median"]) == [r["decode"]["median"] for r in report["rows"]]
    assert (runs["decode_s_q1"] <= runs["decode_s_median"]).all()
    assert fits["b"].item() == pytest.approx(report["fits"][0]["b"])
    assert fits["b"].item() > 0   # more decodes per "step" take longer


def test_reads_the_flat_form():
    runs, fits = read_speed({"runs": [{"codec": "cdc", "size": "256x256", "steps": s, "decode_s_median": m}
                                      for s, m in ((10, 1.0), (20, 2.0))],
                             "fits": [{"codec": "cdc", "size": "256x256", "a": 0.0, "b": 0.1}]})
    assert list(runs["size"]) == ["256×256", "256×256"] and fits["b"].item() == 0.1


def test_plot_speed_annotates_cost_per_step(td, tmp_path):
    path = td.speed_json(tmp_path / "speed.json")
    b = json.loads(path.read_text())["fits"][0]["b"]
    written = plot_speed([path], tmp_path / "speed", ("svg", "png"))
    svg = written[0].read_text()
    assert f"{b * 1e3:.3g} ms/step" in svg
    assert written[1].stat().st_size > 1000


def test_bad_report_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"codec": "cdc", "rows": [{"width": 8, "height": 8, "steps": 2}]}))
    with pytest.raises(SpeedReportError, match="bad.json: missing field 'decode'"):
        read_speed(bad)
    bad.write_text(json.dumps({"codec": "cdc", "rows": []}))
    with pytest.raises(SpeedReportError, match="no runs with a step count"):
        read_speed(bad)


def test_reads_a_real_speed_command_report(tmp_path):
    """``speed_cdc_random_64px.json`` was written by `cdc-bench speed -c cdc --steps 1,2,4 --size 64x64
    --repeats 2 -o cdc.weights=random --threads 1 --out ...` (CPU): the reader must keep up with its schema."""
    path = Path(__file__).resolve().parent / "speed_cdc_random_64px.json"
    report = json.loads(path.read_text())
    runs, fits = read_speed(path)
    assert list(runs["steps"]) == [r["steps"] for r in report["rows"]]
    assert list(runs["decode_s_median"]) == [r["decode"]["median"] for r in report["rows"]]
    decode_fit = next(f for f in report["fits"] if f["phase"] == "decode")
    assert fits["b"].item() == pytest.approx(decode_fit["b"]) and len(fits) == 1   # decode phase only
    svg = plot_speed([path], tmp_path / "speed", ("svg",))[0].read_text()
    assert "random weights" in svg and f"{decode_fit['b'] * 1e3:.3g} ms/step" in svg


def test_series_of_one_codec_differ_in_marker_line_and_face():
    """Issue 15: two sizes of one codec share its colour, so marker, fit line style and face tell them apart."""
    from cdc_bench.plots.speed import _series_styles

    styles = list(_series_styles([("cdc", "64×64"), ("cdc", "256×256"), ("cdc", "768×512")]).values())
    for key in ("marker", "linestyle"):
        assert len({str(s[key]) for s in styles}) == 3
    assert styles[0]["mfc"] != styles[1]["mfc"]
    assert styles[0]["marker"] == "o"  # the codec's own marker first, as in the RD figures


def test_plots_a_fresh_report_of_the_speed_harness(tmp_path):
    import zlib

    import numpy as np
    from pypdf import PdfReader

    from cdc_bench.codecs.base import Codec, Option
    from cdc_bench.codecs.registry import register
    from cdc_bench.speed import SpeedConfig, run_speed

    @register
    class Repeat(Codec):
        """zlib; the decoder inflates ``steps`` times (work that grows with steps)."""

        name = "speedtoy-plot"
        rate_points = (6,)
        option_specs = {"steps": Option(1)}

        def _encode(self, image, rate):
            return bytes(image.shape[:2]) + zlib.compress(image.tobytes(), rate)

        def _decode(self, data):
            for _ in range(self.options["steps"]):
                raw = zlib.decompress(data[2:])
            return np.frombuffer(raw, np.uint8).reshape(data[0], data[1], 3).copy()

    report = run_speed(SpeedConfig("speedtoy-plot", steps=[1, 2, 3], sizes=[(16, 16), (24, 16)], repeats=1, warmup=0))
    pdf = plot_speed([report], tmp_path / "speed", ("pdf",))[0]
    assert len(PdfReader(pdf).pages) == 1
