"""``speed.compare``: ratios, the regression verdict and which runs may be compared, on synthetic reports."""

from __future__ import annotations

import pytest

from cdc_bench.speed import SCHEMA, compare_reports, mismatches, soft_differences

def _report(medians: dict[tuple[int, int, int | None], float], **env) -> dict:
    base_env = {"device": "cpu", "device_name": "cpu-x", "dtype": "float32", "threads": 2}
    rows = [{"width": w, "height": h, "steps": s,
             "encode": {"median": 0.1}, "decode": {"median": m}} for (w, h, s), m in medians.items()]
    sizes = sorted({f"{w}x{h}" for w, h, _ in medians})
    return {"schema": SCHEMA, "codec": "cdc", "options": {"gamma": 0.8}, "rate": 0.0032,
            "env": {**base_env, **env}, "settings": {"sizes": sizes}, "rows": rows, "fits": []}


def test_compare_ratios_and_regression_verdict():
    old = _report({(64, 64, 1): 1.0, (64, 64, 2): 2.0, (64, 64, 4): 4.0})
    new = _report({(64, 64, 1): 1.05, (64, 64, 2): 2.5, (64, 64, 8): 8.0})
    comp = compare_reports(old, new, max_slowdown=1.10)
    decode = {r.steps: r for r in comp.rows if r.phase == "decode"}
    assert set(decode) == {1, 2}
    assert decode[1].ratio == pytest.approx(1.05) and not decode[1].regressed
    assert decode[2].ratio == pytest.approx(1.25) and decode[2].regressed
    assert comp.regressed and comp.worst.steps == 2
    assert comp.only_old == [(64, 64, 4)] and comp.only_new == [(64, 64, 8)]
    assert not compare_reports(old, new, max_slowdown=1.3).regressed


def test_compare_one_point_rows_match_on_none_steps():
    comp = compare_reports(_report({(16, 16, None): 1.0}), _report({(16, 16, None): 0.5}), 1.1)
    assert [(r.steps, r.phase, r.ratio) for r in comp.rows] == [(None, "encode", 1.0), (None, "decode", 0.5)]


def test_mismatches_name_what_differs():
    old = _report({(64, 64, 1): 1.0})
    assert mismatches(old, _report({(64, 64, 1): 2.0})) == []
    assert mismatches(old, _report({(64, 64, 1): 1.0}, device="cuda", device_name="H100")) == [
        "device: cpu vs cuda", "device_name: cpu-x vs H100"]
    assert mismatches(old, _report({(64, 64, 1): 1.0}, dtype="float16")) == ["dtype: float32 vs float16"]
    assert mismatches(old, _report({(64, 64, 1): 1.0}, threads=8)) == ["threads: 2 vs 8"]
    assert mismatches(old, _report({(128, 64, 1): 1.0})) == ["sizes: 64x64 vs 128x64"]
    other = {**_report({(64, 64, 1): 1.0}), "codec": "cdc-eps", "rate": 0.1}
    assert mismatches(old, other) == ["codec: cdc vs cdc-eps"]
    assert soft_differences(old, other) == ["rate: 0.0032 vs 0.1"]
