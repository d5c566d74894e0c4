"""``cdc-bench plot`` end to end on a real results folder (Pillow JPEG/WebP on Kodak crops)."""

from __future__ import annotations


import pytest
from click.testing import CliRunner


from cdc_bench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def results(td, tmp_path_factory, kodak_dir):
    return td.shared_results(tmp_path_factory, kodak_dir)


def test_plot_writes_pdf_and_png(results, tmp_path):
    from PIL import Image
    from pypdf import PdfReader

    out = tmp_path / "figs"
    res = CliRunner().invoke(main, ["plot", str(results), "--metrics", "psnr,ms-ssim", "--format", "pdf,png",
                                    "--width", "6.9", "--reference", "compressai:jpeg", "--reference", "hific",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "20 rows used, 1 left out" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["rd_kodak_ms-ssim.caption.txt", "rd_kodak_ms-ssim.pdf",
                                                     "rd_kodak_ms-ssim.png", "rd_kodak_psnr.caption.txt",
                                                     "rd_kodak_psnr.pdf", "rd_kodak_psnr.png"]
    with Image.open(out / "rd_kodak_psnr.png") as img:
        assert img.size[0] == 2070   # 6.9 in at 300 dpi
    text = PdfReader(out / "rd_kodak_psnr.pdf").pages[0].extract_text()
    assert "JPEG (published)" in text and "HiFiC (published)" in text


def test_plot_default_out_and_metrics(results, tmp_path):
    import shutil

    copy = tmp_path / "res"
    shutil.copytree(results, copy)
    res = CliRunner().invoke(main, ["plot", str(copy), "--format", "svg"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (copy / "figures").iterdir() if not p.name.endswith(".caption.txt"))
    assert names == ["rd_kodak_ms-ssim.svg", "rd_kodak_psnr.svg"]


def test_plot_speed_only(td, tmp_path):
    speed = td.speed_json(tmp_path / "speed.json")
    res = CliRunner().invoke(main, ["plot", "--speed", str(speed), "--format", "png", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "speed.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--format", "gif"], "--format: unknown gif"),
    (["--metrics", "psnrr"], "unknown metric 'psnrr'. Did you mean psnr"),
    (["--reference", "compressai:nope"], "no file"),
])
def test_plot_bad_input_is_explained(results, tmp_path, args, message):
    res = CliRunner().invoke(main, ["plot", str(results), "--out", str(tmp_path), *args])
    assert res.exit_code != 0
    assert message in res.output


def test_plot_without_results_says_so(tmp_path):
    res = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert res.exit_code != 0 and "no results in" in res.output and "cdc-bench run" in res.output


def _pdf_text(path) -> str:
    from pypdf import PdfReader

    return PdfReader(path).pages[0].extract_text()


def test_subset_title_and_published_overlay_warning(results, tmp_path):
    # The shared results hold 2 of Kodak's 24 images: the title says so, and published full-Kodak curves
    # drawn over them get a warning in the figure and on the terminal.
    out = tmp_path / "f"
    res = CliRunner().invoke(main, ["plot", str(results), "--metrics", "psnr", "--format", "pdf",
                                    "--reference", "compressai:jpeg", "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = _pdf_text(out / "rd_kodak_psnr.pdf")
    assert "kodak (2 of 24 images)" in text
    assert "published curves are full-dataset means" in " ".join(text.split())
    assert "warning: kodak (2 of 24 images), center-crop:192, psnr: published curves are full-dataset means" in res.output


def test_local_reference_is_labelled_by_its_file_name(results, tmp_path):
    mine = tmp_path / "my-codec.csv"
    mine.write_text("bpp,psnr\n0.3,30\n0.6,33\n1.2,36\n")
    res = CliRunner().invoke(main, ["plot", str(results), "--metrics", "psnr", "--format", "pdf",
                                    "--reference", str(mine), "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    text = _pdf_text(tmp_path / "f" / "rd_kodak_psnr.pdf")
    assert "my-codec.csv" in text and "(published)" not in text
    assert "full-dataset" not in res.output   # a local file is not a published full-dataset curve


def test_ms_ssim_in_db_and_axis_limits(results, tmp_path):
    res = CliRunner().invoke(main, ["plot", str(results), "--metrics", "ms-ssim", "--format", "svg",
                                    "--xlim", "0,0.5", "--ylim", "10,20", "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    import re

    svg = (tmp_path / "f" / "rd_kodak_ms-ssim.svg").read_text()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)   # SVG text stays text (svg.fonttype none)
    assert "MS-SSIM [dB] ↑" in texts
    assert texts[:6] == ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5"]   # x ticks end at --xlim's 0.5
    assert "20" in texts and "22" not in texts                        # y ticks end at --ylim's 20
    lin = CliRunner().invoke(main, ["plot", str(results), "--metrics", "ms-ssim", "--format", "svg",
                                    "--ms-ssim-linear", "--out", str(tmp_path / "g")])
    assert lin.exit_code == 0 and "MS-SSIM [dB]" not in (tmp_path / "g" / "rd_kodak_ms-ssim.svg").read_text()
    bad = CliRunner().invoke(main, ["plot", str(results), "--xlim", "1", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "--xlim '1': give two numbers LO,HI" in bad.output


def test_several_results_folders_in_one_plot(results, tmp_path):
    import shutil

    other = tmp_path / "run-b"
    shutil.copytree(results, other)
    res = CliRunner().invoke(main, ["plot", str(results), str(other), "--metrics", "psnr", "--format", "pdf",
                                    "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert "40 rows used" in res.output
    text = _pdf_text(tmp_path / "f" / "rd_kodak_psnr.pdf")
    assert "jpeg (results=run-b)" in text and f"jpeg (results={results.name})" in text


def test_intervals_are_bands_unless_no_ci(td, results):
    from cdc_bench.analysis.curves import metric_spec, ok_rows, rd_points
    from cdc_bench.analysis.stats import Bootstrap

    frame, _ = ok_rows(td.load_frame(results))
    points = rd_points(frame, [metric_spec("psnr")], boot=Bootstrap(n_resamples=200))
    assert ((points["psnr_lo"] <= points["psnr"]) & (points["psnr"] <= points["psnr_hi"])).all()
    assert (points["psnr_hi"] > points["psnr_lo"]).all()
    assert "psnr_lo" not in rd_points(frame, [metric_spec("psnr")]).columns


def test_plot_help_names_only_real_options():
    res = CliRunner().invoke(main, ["plot", "--help"])
    assert res.exit_code == 0 and "speed --json" not in res.output and "speed --out" in res.output


@pytest.fixture(scope="module")
def cdc_sweep(tmp_path_factory):
    """A real small CDC sweep with random weights (a 64 px crop of one embedded image, 1-2 DDIM steps, two
    gammas) plus JPEG and WebP, measured with PSNR and LPIPS (stand-in AlexNet trunk: the real one cannot be
    downloaded here; the figure code only needs real numbers of the right kind)."""
    import os

    import torch
    import torchvision

    from cdc_bench.download import sha256_of
    from cdc_bench.metrics import perceptual

    root = tmp_path_factory.mktemp("cdc-sweep")
    hub = root / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), hub / "alexnet-owt-7be5be79.pth")
    pinned = perceptual.ALEXNET.sha256  # the stand-in is pinned for this sweep, as a verified file must be
    perceptual.ALEXNET.sha256 = sha256_of(hub / "alexnet-owt-7be5be79.pth")
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(root / "torch")
    perceptual.load_lpips.cache_clear()
    out = root / "res"
    base = ["run", "-d", "default", "--limit", "1", "--preprocess", "center-crop:64", "-m", "psnr,lpips",
            "--out", str(out), "--workers", "0", "--quiet"]
    try:
        for gamma, steps in (("0.0", "1"), ("0.8", "1"), ("0.0", "2")):
            res = CliRunner().invoke(main, base + ["-c", "cdc", "-q", "0.0032", "-o", "cdc.weights=random",
                                                   "-o", f"cdc.gamma={gamma}", "-o", f"cdc.steps={steps}"])
            assert res.exit_code == 0, res.output
        res = CliRunner().invoke(main, base + ["-c", "jpeg,webp", "-q", "50,95"])
        assert res.exit_code == 0, res.output
    finally:
        perceptual.ALEXNET.sha256 = pinned
        perceptual.load_lpips.cache_clear()
        if old is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = old
    return out


def test_rdp_figure_from_a_real_random_weights_cdc_sweep(cdc_sweep, tmp_path):
    res = CliRunner().invoke(main, ["plot", str(cdc_sweep), "--kind", "rdp", "--trace", "cdc.gamma",
                                    "--metrics", "psnr,lpips", "--format", "pdf,png", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    text = " ".join(_pdf_text(tmp_path / "rdp_default_cdc-gamma.pdf").split())
    assert "gamma traced" in text and "[random weights]" in text   # marked as random in the legend
    assert "gamma=0" in text   # traced points are labelled (a label over a coinciding point is left out)
    assert "default (1 of 5 images)" in text and "PSNR [dB]" in text and "LPIPS" in text
    assert "random weights: these points show the harness" in text
    assert "jpeg" in text or "does not reach" in res.output       # classical codecs as points at that rate
    assert "random weights" in res.output


def test_trace_figure_quality_and_time_against_steps(cdc_sweep, tmp_path):
    res = CliRunner().invoke(main, ["plot", str(cdc_sweep), "--kind", "trace", "--trace", "cdc.steps",
                                    "--metrics", "psnr,lpips", "--format", "pdf", "--width", "6.9",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    text = " ".join(_pdf_text(tmp_path / "trace_default_cdc-steps.pdf").split())
    assert "Decode time [s]" in text and "steps" in text and "[random weights]" in text


def test_trace_of_step_counts_has_integer_ticks(cdc_sweep, tmp_path):
    import re

    res = CliRunner().invoke(main, ["plot", str(cdc_sweep), "--kind", "trace", "--trace", "cdc.steps",
                                    "--metrics", "psnr", "--format", "svg", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    svg = (tmp_path / "trace_default_cdc-steps.svg").read_text()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "1" in texts and "2" in texts and not {"1.2", "1.4", "1.5", "1.6", "1.8"} & set(texts)


@pytest.mark.parametrize("args, message", [
    (["--kind", "rdp"], "needs --trace"),
    (["--kind", "rdp", "--trace", "cdc.eta"], "only one value of eta"),
    (["--kind", "rdp", "--trace", "hific.gamma"], "no hific rows"),
])
def test_rdp_bad_trace_is_explained(cdc_sweep, tmp_path, args, message):
    res = CliRunner().invoke(main, ["plot", str(cdc_sweep), "--out", str(tmp_path), *args])
    assert res.exit_code != 0 and message in res.output


def test_fid_figure_names_protocol_and_flags_too_few_patches(td, results, tmp_path):
    import shutil

    copy = tmp_path / "res"
    shutil.copytree(results, copy)
    td.add_dataset_metrics(copy)
    res = CliRunner().invoke(main, ["plot", str(copy), "--metrics", "fid,kid", "--format", "pdf",
                                    "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    text = " ".join(_pdf_text(tmp_path / "f" / "rd_kodak_fid.pdf").split())
    assert "FID (fid256)" in text and "96 patches" in text and "UNRELIABLE" in text
    assert "fid: FID: protocol fid256, 96 patches; UNRELIABLE" in res.output


@pytest.fixture(scope="module")
def cdc_psnr_only(tmp_path_factory):
    """The README's RDP sweep as a group without LPIPS weights runs it: random-weights CDC, two gammas, JPEG
    beside it, measured with PSNR only (1 DDIM step on a 64 px crop of one embedded image)."""
    out = tmp_path_factory.mktemp("cdc-psnr") / "res"
    base = ["run", "-d", "default", "--limit", "1", "--preprocess", "center-crop:64", "-m", "psnr",
            "--out", str(out), "--workers", "0", "--quiet"]
    for gamma in ("0.0", "0.8"):
        res = CliRunner().invoke(main, base + ["-c", "cdc", "-q", "0.0032", "-o", "cdc.weights=random",
                                               "-o", f"cdc.gamma={gamma}", "-o", "cdc.steps=1"])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, base + ["-c", "jpeg", "-q", "50,95"])
    assert res.exit_code == 0, res.output
    return out


def test_rdp_without_any_perception_metric_says_what_is_missing_and_how_to_add_it(cdc_psnr_only, tmp_path):
    res = CliRunner().invoke(main, ["plot", str(cdc_psnr_only), "--kind", "rdp", "--trace", "cdc.gamma",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 2, res.output   # a ConfigError: a message, no traceback
    assert "Traceback" not in res.output and "KeyError" not in res.output
    assert "needs a perception metric" in res.output and "lpips, dists, lpips-vgg, fid, kid" in res.output
    assert "they hold psnr" in res.output and "-m psnr,fid,kid" in res.output
    named = CliRunner().invoke(main, ["plot", str(cdc_psnr_only), "--kind", "rdp", "--trace", "cdc.gamma",
                                      "--metrics", "psnr,lpips", "--out", str(tmp_path)])
    assert named.exit_code == 2 and "no lpips values in the results" in named.output
    assert "cdc-bench weights --import DIR" in named.output


def test_readme_rdp_and_trace_run_without_lpips(td, cdc_psnr_only, tmp_path):
    import shutil

    copy = tmp_path / "res"
    shutil.copytree(cdc_psnr_only, copy)
    td.add_dataset_metrics(copy)   # FID/KID as the sweep stores them (stand-in features; see plots_testdata)
    res = CliRunner().invoke(main, ["plot", str(copy), "--kind", "rdp", "--trace", "cdc.gamma", "--format", "pdf",
                                    "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert "rdp: psnr against fid" in res.output
    assert "FID" in _pdf_text(tmp_path / "f" / "rdp_default_cdc-gamma.pdf")
    res = CliRunner().invoke(main, ["plot", str(copy), "--kind", "trace", "--trace", "cdc.gamma", "--format", "pdf",
                                    "--metrics", "psnr,lpips", "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert "no lpips values for cdc; those panels are left out" in res.output
    text = " ".join(_pdf_text(tmp_path / "t" / "trace_default_cdc-gamma.pdf").split())
    assert "center-crop:64" in text   # the preprocessing is named, as in the RD and RDP titles
