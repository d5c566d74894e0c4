"""Visual comparison from saved reconstructions: matched bitrate, exact crops, files at paper width."""

from __future__ import annotations


import numpy as np
import pytest


from cdc_bench.datasets.images import load_image  # noqa: E402
from cdc_bench.commands._originals import find_original  # noqa: E402
from cdc_bench.plots.compare import (CompareError, comparison_tiles, crop_box,  # noqa: E402
                                     load_recon, matched_rows, plot_tiles)
from cdc_bench.analysis.curves import metric_spec, ok_rows  # noqa: E402
from cdc_bench.plots.style import DPI  # noqa: E402


@pytest.fixture(scope="module")
def results(td, tmp_path_factory, kodak_dir):
    return td.shared_results(tmp_path_factory, kodak_dir)


@pytest.fixture(scope="module")
def frame(td, results):
    return td.load_frame(results)


@pytest.mark.parametrize("target", [0.3, 0.8, 2.0])
def test_matched_rows_pick_the_closest_rate_point(frame, target):
    got = matched_rows(frame, "kodim23", target)
    rows, _ = ok_rows(frame)
    for codec in ("jpeg", "webp"):
        mine = rows[(rows["image"] == "kodim23") & (rows["codec"] == codec)]
        best = mine.loc[(mine["bpp"] - target).abs().idxmin()]
        assert got.loc[got["codec"] == codec, "quality"].item() == best["quality"]
    assert list(got["bpp"]) == sorted(got["bpp"])


def test_matched_rows_errors_name_the_item(frame):
    with pytest.raises(CompareError, match="no successful results for image 'kodim99'"):
        matched_rows(frame, "kodim99", 0.5)
    with pytest.raises(CompareError, match="none of hevc has results"):
        matched_rows(frame, "kodim23", 0.5, codecs=["hevc"])


def test_crop_box():
    assert crop_box((512, 768, 3), 256) == (128, 256, 256, 256)
    assert crop_box((512, 768, 3), 256, (10, 20)) == (20, 10, 256, 256)
    assert crop_box((100, 120, 3), 256) == (0, 0, 100, 120)   # larger than the image: the whole image
    with pytest.raises(CompareError, match="does not fit"):
        crop_box((512, 768, 3), 256, (600, 0))


def test_tiles_are_exact_crops(td, results, frame, kodak_dir, tmp_path):
    original = find_original("kodak", "kodim23", f"center-crop:{td.CROP}", kodak_dir / "kodim23.png")
    assert np.array_equal(original, load_image(kodak_dir / "kodim23.png", f"center-crop:{td.CROP}")[0])
    rows = matched_rows(frame, "kodim23", 0.5)
    tiles = comparison_tiles(results, rows, original, 64, (40, 30), [metric_spec("psnr"), metric_spec("ms-ssim")])
    assert len(tiles) == 1 + len(rows)
    assert tiles[0].title.startswith("Original")
    assert np.array_equal(tiles[0].image, original[30:94, 40:104])
    for tile, (_, row) in zip(tiles[1:], rows.iterrows()):
        recon = load_recon(results, row)
        assert np.array_equal(tile.image, recon[30:94, 40:104])
        assert tile.title.startswith(row["codec"])
        assert f"{row['bpp']:.3f} bpp" in tile.title and f"{row['psnr']:.2f} dB" in tile.title
        assert f"MS-SSIM {row['ms_ssim']:.3f}" in tile.title
        assert not np.array_equal(tile.image, tiles[0].image)   # a lossy codec changed the pixels
    written = plot_tiles(tiles, tmp_path / "cmp", ("png", "pdf"), width=6.9)
    from PIL import Image
    from pypdf import PdfReader

    with Image.open(written[0]) as img:
        assert img.size[0] == round(6.9 * DPI)
    page = PdfReader(written[1]).pages[0]
    assert float(page.mediabox.width) == pytest.approx(6.9 * 72, abs=0.5)
    assert "Original" in page.extract_text()


def test_missing_reconstruction_says_save_recon(frame, tmp_path):
    row = matched_rows(frame, "kodim23", 0.5).iloc[0]
    with pytest.raises(CompareError, match="--save-recon"):
        load_recon(tmp_path, row)


def test_original_of_another_size_is_refused(results, frame, kodak_dir):
    full = find_original("kodak", "kodim23", None, kodak_dir)   # a folder: finds kodim23.png, no crop
    with pytest.raises(CompareError, match="same preprocessing"):
        comparison_tiles(results, matched_rows(frame, "kodim23", 0.5), full, 64, None, [])


def test_rate_text_uses_the_codecs_rate_label():
    from cdc_bench.plots.compare import rate_text

    assert rate_text("jpeg2000", 100) == "compression ratio 100"   # not "q=100"
    assert rate_text("jpeg", 50) == "quality 50"
    assert rate_text("no-such-codec", 3) == "rate point 3"


def test_a_saved_reconstruction_beyond_the_pixel_limit_is_refused_before_decoding(frame, results, monkeypatch):
    from cdc_bench.plots.compare import load_recon

    row = ok_rows(frame)[0].iloc[0]
    assert load_recon(results, row).ndim == 3
    monkeypatch.setenv("CDC_BENCH_MAX_PIXELS", "100")  # the same limit as for inputs (default 64 Mpx)
    with pytest.raises(CompareError, match="too large .* > limit of 100 px"):
        load_recon(results, row)
