"""RD curves from real measurements: dataset means, fixed codec styles, axis direction, files at paper size."""

from __future__ import annotations


import numpy as np
import pytest


from cdc_bench.analysis.curves import curve_label, metric_spec, ok_rows, rd_points  # noqa: E402
from cdc_bench.analysis.published import resolve_reference  # noqa: E402
from cdc_bench.plots.rd import plot_rd, rd_axes  # noqa: E402
from cdc_bench.plots.style import DPI, codec_style, paper_style  # noqa: E402


@pytest.fixture(scope="module")
def frame(td, tmp_path_factory, kodak_dir):
    return td.load_frame(td.shared_results(tmp_path_factory, kodak_dir))


def test_ok_rows_drops_failed_items(frame):
    rows, dropped = ok_rows(frame)
    assert dropped == 1
    assert (rows["status"] == "ok").all()
    assert len(rows) == len(frame) - 1


def test_rd_points_are_dataset_means(td, frame):
    rows, _ = ok_rows(frame)
    specs = [metric_spec("psnr"), metric_spec("ms_ssim")]
    points = rd_points(rows, specs)
    sel = rows[(rows["codec"] == "jpeg") & (rows["quality"] == "30")]  # the rate point is text (the store's key)
    got = points[(points["codec"] == "jpeg") & (points["quality"] == "30")].iloc[0]
    assert got["bpp"] == pytest.approx(sel["bpp"].mean())
    assert got["psnr"] == pytest.approx(sel["psnr"].mean())
    assert got["ms_ssim"] == pytest.approx(sel["ms_ssim"].mean())
    assert got["n_images"] == len(td.IMAGES)
    # One point per rate point per codec; the failed webp q=95 item leaves no point behind.
    assert len(points) == sum(len(q) for q in td.QUALITIES.values())


def test_metric_direction_and_label_come_from_the_registry():
    assert metric_spec("psnr").axis_label == "PSNR [dB] ↑"
    assert metric_spec("ms-ssim").column == "ms_ssim"
    assert metric_spec("ms_ssim").name == "ms-ssim"
    with pytest.raises(KeyError, match="unknown metric"):
        metric_spec("no-such-metric")


def test_codec_style_is_fixed_and_distinct():
    assert codec_style("jpeg") == codec_style("JPEG") == codec_style("jpeg")
    assert codec_style("bpg_444_x265_ycbcr") == codec_style("bpg")   # published BPG wears BPG's colour
    names = ["cdc", "cdc-eps", "hific", "msillm", "nogan", "bpg", "jpeg", "webp", "jpeg2000", "jpegxl"]
    assert len({(codec_style(n)["color"], codec_style(n)["marker"]) for n in names}) == len(names)
    assert codec_style("some-new-codec") == codec_style("some-new-codec")


def test_curve_label_names_options():
    assert curve_label("cdc", '{"steps": 65, "gamma": 0.8}') == "cdc (gamma=0.8, steps=65)"
    assert curve_label("jpeg", "{}") == "jpeg"


def test_axes_direction_published_dashed(frame):
    rows, _ = ok_rows(frame)
    spec = metric_spec("psnr")
    points = rd_points(rows, [spec])
    ref = resolve_reference("compressai:jpeg", "kodak")
    with paper_style():
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        assert rd_axes(ax, points, spec, ref) == 3
        labels = {line.get_label(): line for line in ax.get_lines()}
        assert ax.get_ylabel() == "PSNR [dB] ↑"
        assert labels["JPEG (published)"].get_linestyle() == "--"
        assert labels["jpeg"].get_linestyle() == "-"
        # The same codec has the same colour measured and published.
        assert labels["jpeg"].get_color() == labels["JPEG (published)"].get_color()
        y = labels["webp"].get_ydata()
        assert np.all(np.diff(y) > 0)  # quality rises with rate on real data
        plt.close(fig)


@pytest.mark.parametrize("width", [3.3, 6.9])
def test_plot_rd_files_at_paper_size(frame, tmp_path, width):
    from PIL import Image
    from pypdf import PdfReader

    rows, _ = ok_rows(frame)
    specs = [metric_spec("psnr"), metric_spec("ms-ssim")]
    written = plot_rd(rd_points(rows, specs), specs, tmp_path, ("pdf", "png"), width)
    assert sorted(p.name for p in written) == ["rd_kodak_ms-ssim.pdf", "rd_kodak_ms-ssim.png",
                                               "rd_kodak_psnr.pdf", "rd_kodak_psnr.png"]
    with Image.open(tmp_path / "rd_kodak_psnr.png") as img:
        assert img.size[0] == round(width * DPI)                      # exactly the width asked for
        assert abs(img.size[1] - width * 0.75 * DPI) <= 1
    page = PdfReader(tmp_path / "rd_kodak_psnr.pdf").pages[0]
    assert float(page.mediabox.width) == pytest.approx(width * 72, abs=0.5)
    text = page.extract_text()
    assert "PSNR" in text and "jpeg" in text and "webp" in text   # TrueType text, not outlines


def test_short_labels_show_only_options_that_differ():
    from cdc_bench.analysis.curves import short_labels

    pairs = [("hevc", '{"preset": "veryslow", "chroma": "444"}'),
             ("cdc", '{"steps": 65, "gamma": 0.8, "rho": 0.9}'), ("cdc", '{"steps": 17, "gamma": 0.8, "rho": 0.9}'),
             ("cdc", '{"steps": 65, "gamma": 0.8, "rho": 0.9}')]
    labels = short_labels(pairs)
    assert labels[pairs[0]] == "hevc"
    assert labels[pairs[1]] == "cdc (steps=65)" and labels[pairs[2]] == "cdc (steps=17)"
    assert len(labels) == 3


def test_dataset_level_metric_joins_its_rate_points(td, frame, tmp_path_factory, kodak_dir, tmp_path):
    """FID comes from the dataset-metrics table, one value per rate point, beside the mean bpp of the images.

    The values here are real Fréchet distances (the project's own ``fid_from_features``) between 8x8 pixel
    blocks of the originals and of the saved reconstructions: not Inception features, but real numbers that
    fall as quality rises, which is all the plumbing needs.
    """
    import shutil

    from PIL import Image

    from cdc_bench.datasets.images import load_image
    from cdc_bench.metrics.frechet import fid_from_features
    from cdc_bench.store.results import ResultsStore, quality_text, recon_path

    results = tmp_path / "res"
    shutil.copytree(td.shared_results(tmp_path_factory, kodak_dir), results)

    def blocks(img):
        img = img.astype(np.float64)
        h, w = (s - s % 8 for s in img.shape[:2])
        return img[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 192)

    originals = np.concatenate([blocks(load_image(kodak_dir / f"{n}.png", f"center-crop:{td.CROP}")[0])
                                for n in td.IMAGES])
    stored = {}
    with ResultsStore(results) as store:  # writes: create=False opens read-only
        for q in td.QUALITIES["jpeg"]:
            recon = np.concatenate([blocks(np.asarray(Image.open(recon_path(results, "kodak", "jpeg", "{}",
                                                                            quality_text(q), n,
                                                                            preprocess=f"center-crop:{td.CROP}"))))
                                    for n in td.IMAGES])
            stored[q] = fid_from_features(originals, recon)
            store.put_dataset_metric({"dataset": "kodak", "codec": "jpeg", "options": "{}", "quality": quality_text(q),
                                      "metric": "fid", "protocol": "blocks8", "value": stored[q],
                                      "preprocess": f"center-crop:{td.CROP}", "device": "cpu"})
        dm = store.dataset_metrics_frame()
    rows, _ = ok_rows(frame)
    fid = metric_spec("fid")
    assert fid.axis_label == "FID ↓" and fid.dataset_level
    points = rd_points(rows, [metric_spec("psnr"), fid], dm)
    jpeg = points[points["codec"] == "jpeg"].set_index("quality")
    assert {q: jpeg.loc[quality_text(q), "fid"] for q in stored} == pytest.approx(stored)
    assert points.loc[points["codec"] == "webp", "fid"].isna().all()   # no FID stored for webp: no point
    assert stored[90] < stored[10]
    written = plot_rd(points, [fid], tmp_path / "figs", ("png",))
    assert [p.name for p in written] == ["rd_kodak_fid.png"]


def test_runs_under_two_preprocessings_are_two_curves_not_one():
    import pandas as pd

    from cdc_bench.metrics import get_metric
    from cdc_bench.analysis.curves import rd_points

    rows = [dict(dataset="kodak", image=img, codec="jpeg", options="{}", quality=q, preprocess=pre, device="cpu",
                 bpp=bpp, psnr=psnr, status="ok")
            for pre, shift in (("none", 0.0), ("center-crop:256", 3.0))
            for img in ("a", "b") for q, bpp, psnr in (("10", 0.2, 25.0 + shift), ("50", 0.8, 30.0 + shift))]
    points = rd_points(pd.DataFrame(rows), [get_metric("psnr")])
    assert len(points) == 4 and points["label"].nunique() == 2
    crop = points[points["label"].str.contains("center-crop:256")]
    assert list(crop["psnr"]) == [28.0, 33.0]
