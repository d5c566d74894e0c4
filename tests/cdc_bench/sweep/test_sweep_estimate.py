import pandas as pd
import pytest

from cdc_bench.codecs.registry import create_codec
from cdc_bench.sweep.estimate import CodecCost, codec_cost, estimate_from_rows, probe_fixed_cost, sweep_minutes


def test_fixed_costs_do_not_scale_with_pixels():
    # 1 s fixed (at the probe's 64^2 px) + 1 us per further pixel: a 256^2 crop ~1.06 s, 768x512 ~1.39 s, not 6x.
    cost = codec_cost("x", [1.0 + 1e-6 * (256 ** 2 - 64 ** 2)] * 4, 256 ** 2, fixed_s=1.0)
    low, high = cost.item_s(768 * 512)
    assert low == pytest.approx(1.0 + 1e-6 * (768 * 512 - 64 ** 2)) and high == pytest.approx(low)
    assert low < 1.07 * 6 / 2


def test_range_from_the_quartiles_and_workers_divide():
    size = 64 ** 2 + 100.0
    costs = {"a": codec_cost("a", [1.0, 2.0, 3.0, 4.0], size, fixed_s=0.0), "b": CodecCost("b", 1.0, (0.0, 0.0))}
    low, high, per = sweep_minutes(costs, {"a": 60, "b": 120}, size, workers=2)
    assert per["b"] == (1.0, 1.0) and low < high
    assert low == pytest.approx(60 * 1.75 / 2 / 60 + 1.0) and high == pytest.approx(60 * 3.25 / 2 / 60 + 1.0)


def test_estimate_from_a_runs_rows_probes_each_codec():
    codec = create_codec("jpeg")
    assert probe_fixed_cost(codec, 50) > 0
    rows = pd.DataFrame({"codec": ["jpeg"] * 3, "status": ["ok"] * 3, "encode_s": [0.01, 0.02, 0.03],
                         "decode_s": [0.01] * 3, "metrics_s": [0.02] * 3})
    text = estimate_from_rows(rows, {"jpeg": 50}, {"jpeg": codec}, {"jpeg": 24 * 19}, 256 ** 2, 768 * 512, 1)
    assert text.startswith("about ") and "jpeg" in text
    assert estimate_from_rows(rows, {}, {}, {"webp": 10}, 256 ** 2, 768 * 512, 1) is None
