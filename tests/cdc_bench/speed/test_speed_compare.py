"""``speed.compare``: the regression gate on synthetic timing records, and which runs may be compared.

Reports are built from seeded random draws (no timing of this machine), so every verdict here is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from cdc_bench.speed import SCHEMA, compare_reports, mismatches, soft_differences

STEPS = (1, 2, 4)


def _summary(times) -> dict:
    times = [float(t) for t in times]
    return {"median": float(np.median(times)), "times": times, "n": len(times)}


def _report(seed: int, decode_factor: float = 1.0, encode_factor: float = 1.0, wall_noise: float = 0.0,
            rounds: int = 5, steps=STEPS, sizes=((64, 64),), **env) -> dict:
    """A report whose CPU times are ``(fixed + per-step * steps) * factor`` with 2% noise; wall times get an
    extra positive noise of up to ``wall_noise`` (other processes delaying the run)."""
    rng = np.random.default_rng(seed)

    def draw(base, factor):
        cpu = base * factor * rng.normal(1, 0.02, rounds)
        return cpu, cpu * (1 + wall_noise * rng.random(rounds))

    rows, encode = [], []
    for w, h in sizes:
        cpu, wall = draw(0.03, encode_factor)
        encode.append({"width": w, "height": h, "encode": _summary(wall), "encode_cpu": _summary(cpu)})
        for s in steps:
            cpu, wall = draw(0.02 + 0.1 * s, decode_factor)
            rows.append({"width": w, "height": h, "steps": s, "decode": _summary(wall), "decode_cpu": _summary(cpu)})
    base_env = {"device": "cpu", "device_name": "cpu-x", "dtype": "float32", "threads": 2}
    return {"schema": SCHEMA, "codec": "cdc", "options": {"gamma": 0.8}, "rate": 0.0032, "gate_clock": "cpu",
            "env": {**base_env, **env}, "settings": {"sizes": sorted(f"{w}x{h}" for w, h in sizes)},
            "encode": encode, "rows": rows, "fits": []}


def test_identical_distributions_pass_even_when_wall_time_is_inflated():
    comp = compare_reports(_report(1), _report(2, wall_noise=2.0), max_slowdown=1.10)
    assert comp.clock == "cpu" and not comp.regressed
    decode = next(r for r in comp.rows if r.phase == "decode")
    assert decode.steps == list(STEPS) and decode.interval.n_old == decode.interval.n_new == 15
    assert decode.interval.low < 1.0 < decode.interval.high
    assert decode.wall_ratio > 1.3  # the wall clock alone would have failed


def test_a_decode_slowdown_of_1_3_fails_and_encode_stays_ok():
    comp = compare_reports(_report(1), _report(2, decode_factor=1.3), max_slowdown=1.10)
    assert comp.regressed
    verdict = {r.phase: r for r in comp.rows}
    assert verdict["decode"].regressed and verdict["decode"].interval.low > 1.2
    assert not verdict["encode"].regressed and verdict["encode"].steps == [None]
    assert comp.worst.phase == "decode"


def test_an_encode_slowdown_is_judged_on_the_encode_alone():
    comp = compare_reports(_report(1), _report(2, encode_factor=1.5), max_slowdown=1.10)
    verdict = {r.phase: r.regressed for r in comp.rows}
    assert verdict == {"encode": True, "decode": False}


def test_the_verdict_is_reproducible():
    old, new = _report(1), _report(2, decode_factor=1.05)
    assert compare_reports(old, new, 1.1).rows == compare_reports(old, new, 1.1).rows  # seeded bootstrap


def test_one_round_gives_the_point_ratio_and_says_there_is_no_interval():
    comp = compare_reports(_report(1, rounds=1, steps=(1,)), _report(2, rounds=1, steps=(1,), decode_factor=2.0), 1.1)
    decode = comp.rows[1].interval
    assert decode.low == decode.ratio == decode.high and decode.method.startswith("none")
    assert comp.regressed


def test_only_common_step_counts_are_pooled():
    comp = compare_reports(_report(1, steps=(1, 2, 4)), _report(2, steps=(2, 4, 8)), 1.1)
    assert comp.rows[1].steps == [2, 4]
    assert comp.only_old == [(64, 64, 1)] and comp.only_new == [(64, 64, 8)]
    assert [(p.phase, p.steps) for p in comp.points] == [("encode", None), ("decode", 2), ("decode", 4)]


def test_falls_back_to_wall_time_when_a_run_has_no_cpu_time():
    old = _report(1)
    for row in old["rows"]:
        row["decode_cpu"] = None
    assert compare_reports(old, _report(2), 1.1).clock == "wall"


def test_mismatches_name_what_differs():
    old = _report(1)
    assert mismatches(old, _report(2)) == []
    assert mismatches(old, _report(1, device="cuda", device_name="H100")) == [
        "device: cpu vs cuda", "device_name: cpu-x vs H100"]
    assert mismatches(old, _report(1, dtype="float16")) == ["dtype: float32 vs float16"]
    assert mismatches(old, _report(1, threads=8)) == ["threads: 2 vs 8"]
    assert mismatches(old, _report(1, sizes=((128, 64),))) == ["sizes: 64x64 vs 128x64"]
    other = {**_report(1), "codec": "cdc-eps", "rate": 0.1}
    assert mismatches(old, other) == ["codec: cdc vs cdc-eps"]
    assert soft_differences(old, other) == ["rate: 0.0032 vs 0.1"]


def test_max_slowdown_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        compare_reports(_report(1), _report(2), 0)
