"""``cdc-bench compare`` end to end from saved reconstructions."""

from __future__ import annotations


import pytest
from click.testing import CliRunner


from cdc_bench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def results(td, tmp_path_factory, kodak_dir):
    return td.shared_results(tmp_path_factory, kodak_dir)


def test_compare_writes_png_and_pdf(td, results, kodak_dir, tmp_path):
    from PIL import Image
    from pypdf import PdfReader

    originals = td.write_originals(tmp_path / "orig", kodak_dir)
    res = CliRunner().invoke(main, ["compare", str(results), "--image", "kodim23", "--crop", "128", "--bpp", "0.5",
                                    "--original", str(originals), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    png = tmp_path / "o" / "compare_kodak_kodim23_0.5bpp.png"
    pdf = png.with_suffix(".pdf")
    with Image.open(png) as img:
        assert img.size[0] == 2070
    text = PdfReader(pdf).pages[0].extract_text()
    assert "Original" in text and "jpeg" in text and "webp" in text
    # It picks the nearest rate point that was run and says so; the rate point is named in the codec's terms.
    assert "nearest of its rate points to 0.5 bpp" in res.output and "matched" not in res.output
    assert "jpeg at quality " in res.output
    caption = (tmp_path / "o" / "compare_kodak_kodim23_0.5bpp.caption.txt").read_text()   # the figure's caption
    assert "near 0.5 bpp" in caption and "Preprocessing: center-crop:192" in caption and caption.strip() in res.output


def test_compare_at_corner_and_codec_filter(td, results, kodak_dir, tmp_path):
    originals = td.write_originals(tmp_path / "orig", kodak_dir)
    res = CliRunner().invoke(main, ["compare", str(results), "--image", "kodim01", "--crop", "64", "--at", "0,0",
                                    "--bpp", "1", "--codecs", "webp", "--original", str(originals / "kodim01.png"),
                                    "--format", "png", "--width", "3.3", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "webp" in res.output and "jpeg" not in res.output


@pytest.mark.parametrize("args, message", [
    (["--image", "kodim99", "--bpp", "0.5"], "no successful results for image 'kodim99'"),
    (["--image", "kodim23", "--bpp", "0.5", "--at", "1"], "give the crop's top-left corner as X,Y"),
    (["--image", "kodim23", "--bpp", "0.5", "--at", "500,0"], "does not fit"),
])
def test_compare_bad_input(td, results, kodak_dir, tmp_path, args, message):
    originals = td.write_originals(tmp_path / "orig", kodak_dir)
    res = CliRunner().invoke(main, ["compare", str(results), "--original", str(originals), "--out", str(tmp_path),
                                    *args])
    assert res.exit_code != 0 and message in res.output


def test_compare_chooses_among_points_with_a_saved_reconstruction_and_says_so(td, results, kodak_dir, tmp_path):
    import shutil

    from cdc_bench.plots.compare import matched_rows
    from cdc_bench.store.results import recon_path_for

    copy = tmp_path / "res"
    shutil.copytree(results, copy)
    frame = td.load_frame(copy)
    nearest = matched_rows(frame, "kodim23", 0.5)
    jpeg = nearest[nearest["codec"] == "jpeg"].iloc[0]
    recon_path_for(copy, jpeg).unlink()   # the nearest JPEG point lost its reconstruction
    for _, row in frame[(frame["codec"] == "webp") & (frame["image"] == "kodim23")].iterrows():
        if row["status"] == "ok":
            recon_path_for(copy, row).unlink(missing_ok=True)   # and WebP has none at all
    originals = td.write_originals(tmp_path / "orig", kodak_dir)
    res = CliRunner().invoke(main, ["compare", str(copy), "--image", "kodim23", "--crop", "64", "--bpp", "0.5",
                                    "--format", "png", "--original", str(originals), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"jpeg: its nearest rate point {jpeg['quality']} ({jpeg['bpp']:.4f} bpp) has no saved reconstruction" in text
    assert "the nearest to 0.5 bpp that has one" in text
    assert "webp: left out, no rate point of it has a saved reconstruction" in text and "--save-recon" in text
    assert f"jpeg at quality {jpeg['quality']}:" not in text
def test_a_dataset_name_with_dots_and_slashes_writes_inside_the_output_folder(td, results, kodak_dir, tmp_path):
    hostile = td.renamed_dataset(results, tmp_path / "deep" / "er" / "res", "../../../escaped")
    originals = td.write_originals(tmp_path / "orig", kodak_dir)
    out = tmp_path / "deep" / "er" / "res" / "o"
    res = CliRunner().invoke(main, ["compare", str(hostile), "--image", "kodim23", "--crop", "64", "--bpp", "0.5",
                                    "--original", str(originals), "--format", "png", "--out", str(out)])
    assert res.exit_code == 0, res.output
    written = [p for p in tmp_path.rglob("compare_*") if p.is_file()]
    assert written and all(out in p.parents for p in written), written


@pytest.mark.parametrize("args, message", [
    (["--bpp", "nan"], "'nan' is not a finite number"),   # was a pandas traceback (idxmin over all-NA)
    (["--bpp", "inf"], "'inf' is not a finite number"),   # silently picked each codec's highest point
    (["--bpp", "-1"], "-1.0 is not in the range x>0"),
    (["--bpp", "0"], "0.0 is not in the range x>0"),
    (["--bpp", "0.5", "--format", "weird"], "--format: unknown weird"),  # was a ValueError after all the work
    (["--bpp", "0.5", "--format", ""], "--format: unknown (empty)"),
])
def test_compare_bad_rate_or_format_is_a_usage_error_before_any_work(tmp_path, args, message):
    res = CliRunner().invoke(main, ["compare", str(tmp_path), "--image", "x", "--out", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
