"""``cdc-bench run --save-bitstreams``: the exact bytes behind each row's bpp, beside its reconstruction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import cdc_bench
from cdc_bench.cli import main
from cdc_bench.codecs.registry import create_codec
from cdc_bench.store.key import ResultKey
from cdc_bench.store.results import ResultsStore


@pytest.fixture
def two_images(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name, shape in (("a", (64, 80, 3)), ("b", (64, 64, 3))):
        smooth = np.cumsum(rng.integers(-6, 7, shape), axis=1) + 128
        Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def _run(folder, out, codec: str, *extra: str):
    res = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", codec, "--out", str(out), "-j", "0",
                                    "--quiet", "--save-bitstreams", *extra])
    assert res.exit_code == 0, res.output
    return res


def _rows(out) -> pd.DataFrame:
    with ResultsStore(out, create=False) as store:
        return store.frame()


def test_saved_bytes_give_the_stored_bpp_and_decode_to_the_saved_reconstruction(two_images, tmp_path):
    from cdc_bench.sweep.worker import _codec

    out = tmp_path / "res"
    _run(two_images, out, "jpeg", "-q", "10,50", "--save-recon")
    # CDC on the first image only: its decode (two network passes) is the cost of this test
    cdc = cdc_bench.run([f"folder:{two_images}"], ["cdc"], qualities=[0.0032], out=out, workers=0, save_recon=True,
                        save_bitstreams=True, options={"cdc": {"weights": "random", "steps": 2}}, limit=1)
    rows = _rows(out)
    assert len(rows) == 5 and set(rows["status"]) == {"ok"} and set(rows["codec"]) == {"jpeg", "cdc"}
    cdc_task = cdc.outcome.tasks[0]
    store = ResultsStore(out, create=False)
    for _, row in rows.iterrows():
        path = ResultKey.from_row(row).bitstream_path(out)
        assert path.is_file() and path.suffix == ".bin"
        assert path.with_suffix(".png") == ResultKey.from_row(row).recon_path(out).absolute()
        data = path.read_bytes()
        assert data == store.get_bitstream(row)
        assert len(data) * 8 / (row["height"] * row["width"]) == row["bpp"]   # exactly: headers included
        # a fresh decoder for jpeg; the sweep's own instance for cdc (building its network takes seconds)
        codec = (_codec(cdc_task.codec, cdc_task.options, "cpu") if row["codec"] == "cdc"
                 else create_codec(row["codec"], json.loads(row["options"])))
        recon = np.asarray(Image.open(store.recon_file(row)).convert("RGB"))
        assert np.array_equal(codec.decode(data), recon)
    store.close()
    assert not list(out.rglob("*.tmp"))                                       # written by rename, nothing left


def test_a_rerun_encodes_again_only_the_items_whose_bytes_are_missing(two_images, tmp_path):
    out = tmp_path / "res"
    first = cdc_bench.run([f"folder:{two_images}"], ["jpeg"], qualities=[10, 50], out=out, workers=0)
    assert first.outcome.summary.ok == 4 and not list(out.rglob("*.bin"))  # not asked: nothing saved
    again = cdc_bench.run([f"folder:{two_images}"], ["jpeg"], qualities=[10, 50], out=out, workers=0,
                          save_bitstreams=True)
    assert again.outcome.summary.ok == 4 and len(list(out.rglob("*.bin"))) == 4
    victim = ResultKey.from_row(_rows(out).iloc[0]).bitstream_path(out)
    others = {p: p.stat().st_mtime_ns for p in out.rglob("*.bin") if p != victim}
    victim.unlink()
    third = cdc_bench.run([f"folder:{two_images}"], ["jpeg"], qualities=[10, 50], out=out, workers=0,
                          save_bitstreams=True)
    assert third.outcome.summary.ok == 1 and third.outcome.summary.skipped == 3
    assert victim.is_file() and {p: p.stat().st_mtime_ns for p in others} == others


def test_an_item_that_fails_after_its_encode_saves_no_bytes(two_images, tmp_path, monkeypatch):
    from cdc_bench.sweep import worker

    measure = worker.measure

    def fail_on_b(original, recon, task):
        if task.image == "b":
            raise RuntimeError("metric broke")
        return measure(original, recon, task)

    monkeypatch.setattr(worker, "measure", fail_on_b)
    out = tmp_path / "res"
    outcome = cdc_bench.run([f"folder:{two_images}"], ["jpeg"], qualities=[30], out=out, workers=0,
                            save_bitstreams=True).outcome
    assert outcome.summary.ok == 1 and outcome.summary.failed == 1
    saved = [p.stem for p in out.rglob("*.bin")]
    assert saved == ["a"]


def test_batched_decoding_hands_back_each_items_own_bytes(two_images, tmp_path):
    out = tmp_path / "res"
    outcome = cdc_bench.run([f"folder:{two_images}"], ["jpeg"], qualities=[20], out=out, workers=0, batch=2,
                            save_bitstreams=True).outcome
    assert outcome.summary.ok == 2
    for _, row in _rows(out).iterrows():
        data = ResultKey.from_row(row).bitstream_path(out).read_bytes()
        assert len(data) == row["bytes"] and data[:2] == b"\xff\xd8"      # a JPEG stream, this row's own
