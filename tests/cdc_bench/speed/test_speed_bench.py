"""``speed.bench``: the measuring loop, with the small codecs of conftest.py."""

from __future__ import annotations

import json

import pytest
import torch

from cdc_bench.speed import SCHEMA, SpeedConfig, SpeedError, run_speed
from cdc_bench.speed.bench import RANDOM_NOTE
from cdc_bench.weights import WeightFile, register_weight

def test_run_speed_measures_every_size_and_step_count():
    config = SpeedConfig("speedtoy", steps=[1, 3, 6], sizes=[(32, 24), (16, 16)], repeats=2, warmup=1)
    report = run_speed(config)
    assert report["schema"] == SCHEMA and report["codec"] == "speedtoy"
    assert [(r["width"], r["height"], r["steps"]) for r in report["rows"]] == [
        (32, 24, 1), (32, 24, 3), (32, 24, 6), (16, 16, 1), (16, 16, 3), (16, 16, 6)]
    for row in report["rows"]:
        assert row["codec_info"] == {"steps_run": row["steps"]}  # the decoder really ran that many steps
        assert "encode" not in row  # encode is timed once per size, not per step count
        assert row["decode"]["n"] == row["decode_cpu"]["n"] == 2 and row["decode_cuda"] is None
        assert row["decode"]["min"] <= row["decode"]["median"] <= row["decode"]["max"]
        assert 0 < row["decode_cpu"]["median"]
        assert row["bytes"] > 5  # more than the toy codec's 5-byte header
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (row["width"] * row["height"]))
        assert row["memory"]["decode_peak_rss_mib"] >= row["memory"]["rss_before_mib"] > 0
        assert row["memory"]["decode_cuda_max_allocated_mib"] is None
    assert [(e["width"], e["height"], e["encode"]["n"], e["encode_cpu"]["n"]) for e in report["encode"]] == [
        (32, 24, 2, 2), (16, 16, 2, 2)]
    assert report["encode"][0]["bytes"] == report["rows"][0]["bytes"]
    assert report["gate_clock"] == "cpu" and report["load"]["cores"] >= 1
    assert report["rate"] == 4  # the middle of (2, 4)
    assert report["options"] == {"channels": 8}
    env = report["env"]
    for key in ("device", "device_name", "dtype", "threads", "torch", "numpy", "python", "git", "created"):
        assert key in env
    assert env["device"] == "cpu" and env["dtype"] == "float32"
    assert report["settings"]["sizes"] == ["32x24", "16x16"] and report["settings"]["steps"] == [1, 3, 6]
    fits = {(f["width"], f["height"], f["phase"], f["clock"]) for f in report["fits"]}
    assert fits == {(w, h, "decode", clock) for w, h in ((32, 24), (16, 16)) for clock in ("wall", "cpu")}
    assert not report["random_weights"]
    json.dumps(report)  # JSON-ready as returned


def test_rounds_encode_once_then_decode_every_step_count(calls):
    run_speed(SpeedConfig("speedtoy-log", steps=[1, 3], sizes=[(8, 8)], repeats=2, warmup=1))
    warm = [("encode", 1), ("decode", 1), ("encode", 3), ("decode", 3)]
    timed_round = [("encode", 1), ("decode", 1), ("decode", 3)]  # one encode per round, not one per step count
    assert calls == warm + timed_round * 2


def test_an_encoder_that_depends_on_steps_is_refused():
    with pytest.raises(SpeedError, match="bitstream differs between step counts"):
        run_speed(SpeedConfig("speedtoy-stepbits", steps=[1, 2], sizes=[(8, 8)], repeats=1, warmup=1))


def test_run_speed_default_steps_threads_and_rate():
    report = run_speed(SpeedConfig("speedtoy", options={"steps": "3"}, sizes=[(16, 8)], repeats=1, warmup=0,
                                   threads=1, rate="2"))
    assert [r["steps"] for r in report["rows"]] == [3]
    assert report["env"]["threads"] == 1 and report["rate"] == 2
    assert report["fits"] == []
    assert report["env"]["versions"]["torch"] and report["env"]["versions"]["compressai"] == "1.2.8"


def test_run_speed_restores_the_thread_count():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    report = run_speed(SpeedConfig("speedtoy", sizes=[(8, 8)], repeats=1, warmup=0, threads=target))
    assert report["env"]["threads"] == target
    assert torch.get_num_threads() == before


def test_one_point_codec_gives_one_row_per_size():
    report = run_speed(SpeedConfig("speedtoy-flat", steps=[1, 2, 4], sizes=[(16, 16), (24, 8)], repeats=2))
    assert [(r["steps"], r["width"]) for r in report["rows"]] == [(None, 16), (None, 24)]
    assert report["steps_option"] is False and report["fits"] == []
    assert any("no 'steps' option" in n for n in report["notes"])


def test_missing_checkpoint_falls_back_to_random_weights_and_says_so():
    report = run_speed(SpeedConfig("speedtoy-ckpt", steps=[1, 2], sizes=[(16, 16)], repeats=1))
    assert report["weights"] == "random" and report["random_weights"] is True
    assert report["options"]["weights"] == "random"
    assert any("speedtoy-ckpt.weights=random" in n for n in report["notes"])
    assert RANDOM_NOTE in report["notes"]


def test_absent_declared_weights_mean_random_weights_without_a_download(tmp_path):
    where = tmp_path / "speedtoy-declared.pt"
    register_weight(WeightFile("speedtoy-declared.pt", "http://127.0.0.1:9/none.pt", where))
    report = run_speed(SpeedConfig("speedtoy-declared", sizes=[(16, 16)], repeats=1))
    assert report["random_weights"] is True
    assert any(str(where) in n and "not found" in n for n in report["notes"])
    where.write_bytes(b"present")  # now the released weights are there: they are used
    report = run_speed(SpeedConfig("speedtoy-declared", sizes=[(16, 16)], repeats=1))
    assert report["weights"] == "released" and report["random_weights"] is False


def test_failed_download_at_first_encode_falls_back_to_random_weights():
    report = run_speed(SpeedConfig("speedtoy-offline", steps=[1, 2], sizes=[(16, 16)], repeats=1))
    assert report["random_weights"] is True and len(report["rows"]) == 2
    assert any("toy-offline.pt is missing" in n for n in report["notes"])
    with pytest.raises(SpeedError, match="WeightsMissing: weight file toy-offline.pt"):
        run_speed(SpeedConfig("speedtoy-offline", options={"weights": "released"}, sizes=[(16, 16)], repeats=1))


def test_explicit_released_weights_are_not_replaced():
    with pytest.raises(SpeedError, match="unavailable.*toy.pt"):
        run_speed(SpeedConfig("speedtoy-ckpt", options={"weights": "released"}, sizes=[(16, 16)], repeats=1))


def test_run_speed_rejects_bad_requests():
    with pytest.raises(SpeedError, match="steps given twice"):
        run_speed(SpeedConfig("speedtoy", options={"steps": "2"}, steps=[1, 2], sizes=[(8, 8)]))
    with pytest.raises(SpeedError, match="repeats"):
        run_speed(SpeedConfig("speedtoy", sizes=[(8, 8)], repeats=0))
    with pytest.raises(SpeedError, match="rate 'x'"):
        run_speed(SpeedConfig("speedtoy", sizes=[(8, 8)], rate="x"))
    with pytest.raises(SpeedError, match=r"16x16, steps=1: decode returned \(15, 16, 3\)"):
        run_speed(SpeedConfig("speedtoy-wrong", steps=[1], sizes=[(16, 16)], repeats=1))
