"""The HTML report: self-contained, and rendered by a real headless browser with no console errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


from cdc_bench.commands._originals import find_original  # noqa: E402
from cdc_bench.analysis.curves import metric_spec, ok_rows  # noqa: E402
from cdc_bench.plots.report import build_report, viewer_data  # noqa: E402
from cdc_bench.plots.style import codec_style  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def page(td, tmp_path_factory, kodak_dir) -> Path:
    results = td.shared_results(tmp_path_factory, kodak_dir)
    frame = td.load_frame(results)
    from cdc_bench.store.results import ResultsStore

    with ResultsStore(results, create=False) as store:
        runs = store.runs()
    specs = [metric_spec("psnr"), metric_spec("ms-ssim")]
    rows, _ = ok_rows(frame)
    original = find_original("kodak", "kodim23", f"center-crop:{td.CROP}", kodak_dir / "kodim23.png")
    viewer = viewer_data(results, rows[rows["image"] == "kodim23"], "kodim23", original, specs, "kodak")
    html = build_report(frame, specs, runs=runs, anchor="jpeg", viewers=[viewer], title="test report")
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_report_is_self_contained(page):
    html = page.read_text()
    # Nothing is fetched: every src/href is a data URI or an in-page anchor.
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert ref.startswith("data:") or ref.startswith("#"), ref
    assert "<link" not in html and "http://" not in html.split("<script")[0]
    assert html.count("data:image/svg+xml;base64,") == 2          # PSNR and MS-SSIM figures
    assert "test-run" in html and "cdc-bench run --codecs jpeg,webp" in html   # the manifest
    assert "BD-rate PSNR [%] ↓" in html and "1 rows with status other than ok left out" in html


def test_viewer_data_holds_every_saved_reconstruction(page):
    html = page.read_text()
    payload = html.split('<script type="application/json" id="viewer-data">')[1].split("</script>")[0]
    data = json.loads(payload)
    assert data[0]["image"] == "kodim23" and data[0]["original"].startswith("data:image/webp;base64,")
    assert sorted(data[0]["curves"]) == ["jpeg", "webp"]
    assert [len(v) for v in data[0]["curves"].values()] == [5, 5]
    bpps = [p["bpp"] for p in data[0]["curves"]["jpeg"]]
    assert bpps == sorted(bpps)


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser: install Debian's chromium (apt-get install -y chromium) to run this test")


def _run_browser(page: Path, tmp_path: Path, *args: str, fragment: str = "") -> subprocess.CompletedProcess:
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri() + fragment]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_browser_runs_the_page_without_console_errors(page, tmp_path):
    proc = _run_browser(page, tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Chromium logs every console message (errors, uncaught exceptions) as INFO:CONSOLE on stderr.
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    dom = proc.stdout
    assert 'data-viewer="ready"' in dom   # the viewer script ran to its end
    codec_select = dom.split('id="v-codec"')[1].split("</select>")[0]
    assert codec_select.count("<option") == 2 and "jpeg" in codec_select and "webp" in codec_select
    assert re.search(r'id="v-recon"[^>]*src="data:image/webp;base64,', dom) or \
        re.search(r'src="data:image/webp;base64,[^"]*"[^>]*id="v-recon"', dom)


@pytest.mark.parametrize("fragment", ["", "#mode=slider&codec=webp&rate=1&split=40"])
def test_screenshot_shows_figures_and_viewer(page, tmp_path, fragment):
    from PIL import Image

    shot = tmp_path / "shot.png"
    proc = _run_browser(page, tmp_path, f"--screenshot={shot}", "--window-size=1000,2000", fragment=fragment)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)

    def pixels_near(hex_color: str) -> int:
        rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(img - rgb).sum(axis=2) < 30).sum())

    # The RD figures are drawn: both codecs' line colours are on screen.
    assert pixels_near(codec_style("webp")["color"]) > 200
    assert pixels_near(codec_style("jpeg")["color"]) > 200
    # The viewer is drawn: a large block of photo pixels (varied colours) below the figures.
    lower = img[img.shape[0] // 2:]
    assert lower.std() > 20
    assert len(np.unique(lower.reshape(-1, 3)[::7], axis=0)) > 2000


def test_viewer_images_are_close_and_small_by_default_exact_on_request(td, page, tmp_path_factory, kodak_dir):
    import base64
    import io

    from PIL import Image

    from cdc_bench.store.results import recon_path

    html = page.read_text()
    data = json.loads(html.split('id="viewer-data">')[1].split("</script>")[0])
    point = data[0]["curves"]["jpeg"][0]
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(point["src"].split(",", 1)[1]))).convert("RGB"))
    results = td.shared_results(tmp_path_factory, kodak_dir)
    saved = np.asarray(Image.open(recon_path(results, "kodak", "jpeg", "{}", point["quality"], "kodim23",
                                            preprocess=f"center-crop:{td.CROP}")))
    # Lossy WebP at high quality by default: close to the codec's pixels, far smaller than lossless.
    assert not np.array_equal(decoded, saved)
    assert 10 * np.log10(255 ** 2 / np.mean((decoded.astype(float) - saved) ** 2)) > 38
    from cdc_bench.plots.report import image_uri

    assert len(image_uri(saved)) < 0.5 * len(image_uri(saved, lossless=True))
    exact = image_uri(saved, lossless=True)
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(exact.split(",", 1)[1]))).convert("RGB"))
    assert np.array_equal(back, saved)   # --lossless: the viewer shows the codec's exact artefacts


def test_runs_table_says_interrupted_not_nan():
    from cdc_bench.plots.report import _manifest_html

    html_text = _manifest_html([
        {"run_id": "a", "started_at": "t0", "ended_at": "t1", "status": "interrupted",
         "interrupted": {"reason": "SIGINT", "rows_saved": 7}},
        {"run_id": "b", "started_at": "t0", "ended_at": "t2", "load": {"cores": 2, "peak_1min": 2.5}},
        {"run_id": "c", "started_at": "t0", "load": {"cores": 4, "peak_1min": 1.25}},
        {"run_id": "d", "started_at": "t0", "ended_at": "t3", "status": "failed",
         "interrupted": {"reason": "lost the Dask scheduler at tcp://x:1", "rows_saved": 3}},
    ])
    assert "interrupted (SIGINT; 7 rows saved)" in html_text and "finished" in html_text
    assert "failed (lost the Dask scheduler at tcp://x:1; 3 rows saved)" in html_text
    assert "not ended (killed, or still running)" in html_text and "NaN" not in html_text
    assert "2.5 on 2 cores (busy)" in html_text and "1.25 on 4 cores<" in html_text   # the load each sweep saw
