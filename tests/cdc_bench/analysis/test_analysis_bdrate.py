"""BD-rate / BD-metric through the bjontegaard package: known values, edge cases, tables well formed."""

from __future__ import annotations

import io
import re
import random

import numpy as np
import pandas as pd
import pytest


from cdc_bench.analysis.bdrate import bd_metric, bd_rate, bd_table  # noqa: E402
from cdc_bench.analysis.tables import to_csv, to_latex, to_markdown  # noqa: E402
from cdc_bench.metrics import MetricInfo  # noqa: E402
from cdc_bench.analysis.curves import metric_spec, ok_rows, rd_points  # noqa: E402

# The example of the bjontegaard package's README and example_usage.py (x265 presets).
RATE_A = [9487.76, 4593.60, 2486.44, 1358.24]
PSNR_A = [40.037, 38.615, 36.845, 34.851]
RATE_T = [9787.80, 4469.00, 2451.52, 1356.24]
PSNR_T = [40.121, 38.651, 36.970, 34.987]


def test_identical_curves_give_zero():
    assert bd_rate(RATE_A, PSNR_A, RATE_A, PSNR_A).value == pytest.approx(0.0, abs=1e-9)
    assert bd_metric(RATE_A, PSNR_A, RATE_A, PSNR_A).value == pytest.approx(0.0, abs=1e-9)


def test_rates_scaled_by_0_8_give_minus_20_percent():
    scaled = [0.8 * r for r in RATE_A]
    assert bd_rate(RATE_A, PSNR_A, scaled, PSNR_A).value == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(scaled, PSNR_A, RATE_A, PSNR_A).value == pytest.approx(25.0, abs=1e-9)


def test_lower_better_metric_scaled_rates():
    lpips = [0.05, 0.09, 0.15, 0.24]   # falls as rate rises
    r = bd_rate(RATE_A, lpips, [0.8 * x for x in RATE_A], lpips)
    assert r.value == pytest.approx(-20.0, abs=1e-9)


def test_agrees_with_the_bjontegaard_package_example():
    import bjontegaard as bd

    for method in ("pchip", "akima", "cubic"):
        assert bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T, method).value == pytest.approx(
            bd.bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T, method=method), rel=1e-12)
        assert bd_metric(RATE_A, PSNR_A, RATE_T, PSNR_T, method).value == pytest.approx(
            bd.bd_psnr(RATE_A, PSNR_A, RATE_T, PSNR_T, method=method), rel=1e-12)
    # Values of bjontegaard 1.3.0 on its own example (PCHIP matches the JVET CTC Excel sheet, per its README).
    assert bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T).value == pytest.approx(-4.417485, abs=1e-5)
    assert bd_metric(RATE_A, PSNR_A, RATE_T, PSNR_T).value == pytest.approx(0.119693, abs=1e-5)


def test_point_order_does_not_matter():
    order = list(range(4))
    random.Random(1).shuffle(order)
    shuffled = bd_rate([RATE_A[i] for i in order], [PSNR_A[i] for i in order], RATE_T[::-1], PSNR_T[::-1])
    assert shuffled.value == pytest.approx(bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T).value, rel=1e-12)


def test_no_overlap_is_a_note_not_a_number():
    r = bd_rate(RATE_A, PSNR_A, RATE_A, [p + 10 for p in PSNR_A])
    assert np.isnan(r.value) and "no quality overlap" in r.note


def test_partial_overlap_is_noted():
    r = bd_rate(RATE_A, PSNR_A, RATE_A, [p + 3 for p in PSNR_A])
    assert np.isfinite(r.value) and 0 < r.overlap < 0.75
    assert "overlap on" in r.note


def test_non_monotonic_quality_is_noted():
    r = bd_rate(RATE_A, PSNR_A, RATE_T, [40.1, 38.0, 38.5, 34.9])
    assert np.isnan(r.value) and "not monotonic" in r.note


@pytest.fixture(scope="module")
def tidy(td, tmp_path_factory, kodak_dir):
    frame = td.load_frame(td.shared_results(tmp_path_factory, kodak_dir))
    rows, _ = ok_rows(frame)
    specs = [metric_spec("psnr"), metric_spec("ms-ssim")]
    return bd_table(rd_points(rows, specs), "jpeg", specs)


def test_bd_table_on_real_measurements(tidy):
    assert list(tidy["codec"]) == ["webp", "webp"] and set(tidy["metric"]) == {"psnr", "ms-ssim"}
    psnr = tidy[tidy["metric"] == "psnr"].iloc[0]
    # WebP needs fewer bits than JPEG for the same PSNR on Kodak (CompressAI's published curves agree).
    assert psnr["bd_rate_pct"] < 0 and psnr["bd_metric"] > 0
    assert 0 < psnr["quality_overlap"] <= 1


def test_bd_table_anchor_errors(tidy):
    frame = pd.DataFrame({"dataset": ["d"] * 4, "codec": ["a", "a", "b", "b"], "options": ["{}"] * 4,
                          "label": ["a", "a", "b", "b"], "quality": [1, 2, 1, 2], "bpp": [0.1, 0.2, 0.1, 0.2],
                          "psnr": [30.0, 32.0, 31.0, 33.0]})
    with pytest.raises(ValueError, match="anchor 'hevc' not in the results of d; curves there: a, b"):
        bd_table(frame, "hevc", [metric_spec("psnr")])
    got = bd_table(frame, "a", [metric_spec("psnr")])
    assert got["bd_metric"].iloc[0] == pytest.approx(1.0)


def test_markdown_table_is_well_formed(tidy):
    text = to_markdown(tidy)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 3  # header, rule, webp
    assert len({line.count("|") for line in table}) == 1
    assert set(table[1].replace("|", "").replace(":", "").replace(" ", "")) == {"-"}
    assert "BD-rate PSNR [%] ↓" in table[0] and "BD-PSNR [dB] ↑" in table[0]
    assert table[2].split("|")[1].strip() == "webp"


def test_latex_table_is_booktabs_and_balanced(tidy):
    text = to_latex(tidy)
    assert text.count("\\toprule") == text.count("\\midrule") == text.count("\\bottomrule") == 1
    assert text.index("\\toprule") < text.index("\\midrule") < text.index("\\bottomrule")
    spec = text.split("\\begin{tabular}{")[1].split("}")[0]
    body = text.split("\\toprule")[1].split("\\bottomrule")[0].replace("\\midrule", "")
    rows = [r for r in body.splitlines() if r.strip()]
    assert len(rows) == 2 and all(r.rstrip().endswith("\\\\") for r in rows)
    assert all(r.count("&") == len(spec) - 1 for r in rows)
    assert text.count("\\begin{table}") == text.count("\\end{table}") == 1
    assert text.count("{") == text.count("}")
    assert "↑" not in text and "†" not in text and re.search(r"(?<!\\)%", text) is None  # escaped for LaTeX


def test_csv_round_trips(tidy):
    back = pd.read_csv(io.StringIO(to_csv(tidy)))
    assert list(back.columns) == list(tidy.columns)
    assert back["bd_rate_pct"].to_numpy() == pytest.approx(tidy["bd_rate_pct"].to_numpy())


def test_unknown_direction_metric_still_tabulates():
    spec = MetricInfo("custom", "custom", lower_better=None, label="Custom")
    frame = pd.DataFrame({"dataset": ["d"] * 4, "codec": ["a", "a", "b", "b"], "options": ["{}"] * 4,
                          "label": ["a", "a", "b", "b"], "quality": [1, 2, 1, 2], "bpp": [0.1, 0.2, 0.08, 0.16],
                          "custom": [1.0, 2.0, 1.0, 2.0]})
    got = bd_table(frame, "a", [spec])
    assert got["bd_rate_pct"].iloc[0] == pytest.approx(-20.0)
    assert "BD-Custom |" in to_markdown(got) or "BD-Custom" in to_markdown(got)


def test_latex_table_compiles(tidy, tmp_path):
    import shutil
    import subprocess

    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)")
    doc = tmp_path / "table.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                   + to_latex(tidy) + "\n\\end{document}\n")
    proc = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]
    from pypdf import PdfReader

    text = PdfReader(tmp_path / "table.pdf").pages[0].extract_text()
    assert "webp" in text and "BD-rate PSNR" in text


def test_non_monotonic_note_names_the_curve_at_fault():
    # The anchor's quality dips at its third point; the note must blame the anchor, not the test curve.
    frame = pd.DataFrame({"dataset": ["d"] * 8, "codec": ["a"] * 4 + ["b"] * 4, "options": ["{}"] * 8,
                          "label": ["a"] * 4 + ["b"] * 4, "quality": [1, 2, 3, 4] * 2,
                          "bpp": [0.1, 0.2, 0.4, 0.8] * 2, "psnr": [30.0, 32.0, 31.0, 35.0, 30.5, 32.5, 34.5, 36.5]})
    got = bd_table(frame, "a", [metric_spec("psnr")])
    assert "quality not monotonic in rate (anchor a)" in got["note"].iloc[0]
    swapped = bd_table(frame, "b", [metric_spec("psnr")])
    assert "quality not monotonic in rate (a)" in swapped["note"].iloc[0]


def test_clip_curve_interpolates_the_window_ends():
    from cdc_bench.analysis.bdrate import clip_curve

    bpp, q = clip_curve([0.1, 0.4, 1.6], [30.0, 34.0, 38.0], 0.2, 0.8)
    assert bpp.tolist() == [0.2, 0.4, 0.8]
    assert q.tolist() == pytest.approx([32.0, 34.0, 36.0])   # linear in log-rate
