"""Hostile command-line values (the types of ``commands/_params.py`` and the checks beside them): each is one line
naming the option and what it takes, exit status 1 or 2, never a traceback, and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cdc_bench
from cdc_bench.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real jpeg + webp sweep of 2 small images, reconstructions kept (compare needs them)."""
    root = tmp_path_factory.mktemp("params")
    folder = root / "img"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for name in ("im0", "im1"):
        smooth = np.cumsum(rng.integers(-8, 9, (32, 48, 3)), axis=0) + 128
        Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
    cdc_bench.run([f"folder:{folder}"], ["jpeg", "webp"], qualities=[20, 50, 80], out=root / "res", workers=0,
                  save_recon=True)
    return root / "res"


#: arguments after the results folder -> what the one line must say
CASES = {
    "table --ci nan": (["table", "{res}", "--anchor", "jpeg", "--ci", "nan"], "'nan' is not a finite number"),
    "plot --ci nan": (["plot", "{res}", "--ci", "nan", "--out", "{out}"], "'nan' is not a finite number"),
    "table --codecs unknown": (["table", "{res}", "--anchor", "jpeg", "--codecs", "weird"],
                               "--codecs: weird not in the results; codecs there: jpeg, webp"),
    "plot --codecs unknown": (["plot", "{res}", "--codecs", "jpeg,weird", "--out", "{out}"],
                              "--codecs: weird not in the results"),
    "plot --format empty": (["plot", "{res}", "--format", ",", "--out", "{out}"], "--format: unknown (empty)"),
    "plot --bpp nan": (["plot", "{res}", "--kind", "rdp", "--trace", "jpeg.optimize", "--bpp", "nan", "--out",
                        "{out}"], "'nan' is not a finite number"),
    "compare --bpp nan": (["compare", "{res}", "--image", "im0", "--bpp", "nan", "--crop", "16", "--out", "{out}"],
                          "'nan' is not a finite number"),
    "compare --bpp negative": (["compare", "{res}", "--image", "im0", "--bpp", "-1", "--crop", "16", "--out",
                                "{out}"], "-1.0 is not in the range x>0"),
    "compare --bpp inf": (["compare", "{res}", "--image", "im0", "--bpp", "inf", "--crop", "16", "--out", "{out}"],
                          "'inf' is not a finite number"),
    "compare --format unknown": (["compare", "{res}", "--image", "im0", "--bpp", "1", "--crop", "16", "--format",
                                  "weird", "--out", "{out}"], "--format: unknown weird; use pdf, png, svg"),
    "report --anchor unknown": (["report", "{res}", "--anchor", "nothere", "--out", "{out}/r.html"],
                                "--anchor 'nothere' is in none of the results; codecs there: jpeg, webp"),
    "speed --size over the pixel limit": (["speed", "-c", "jpeg", "--size", "99999x99999", "--repeats", "1"],
                                          "is 9,999,800,001 pixels, over the input pixel limit"),
    "speed --max-slowdown nan": (["speed", "-c", "jpeg", "--size", "16x16", "--repeats", "1", "--max-slowdown",
                                  "nan"], "--max-slowdown must be a positive finite number"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_value_is_one_line_naming_it(store, tmp_path, case):
    args, says = CASES[case]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [a.format(res=store, out=out) for a in args])
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and says in errors[0], result.output
    assert not out.exists()   # refused before anything is written


def test_the_same_commands_with_good_values_work(store, tmp_path):
    """The values next to each refused one pass, so the refusals above are about the value alone."""
    for args in (["table", store, "--anchor", "jpeg", "--ci", "90", "--codecs", "webp"],
                 ["compare", store, "--image", "im0", "--bpp", "1", "--crop", "16", "--format", "png", "--out",
                  tmp_path / "c"],
                 ["report", store, "--anchor", "jpeg", "--out", tmp_path / "r.html"]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
