"""``speed.gate``: the bootstrap interval of the median ratio, on fixed synthetic samples."""

from __future__ import annotations

import numpy as np
import pytest

from cdc_bench.speed.gate import gate_interval, median_ratio_interval, pooled, regressed


def _draws(seed: int, n: int = 15, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).normal(1.0, 0.03, n)


def test_identical_distributions_give_an_interval_around_1_that_passes():
    iv = median_ratio_interval(_draws(1), _draws(2))
    assert iv.low < 1 < iv.high and iv.method == "percentile bootstrap" and iv.confidence == 0.95
    assert not regressed(iv, 1.10)


def test_a_1_3_shift_gives_an_interval_above_the_limit():
    iv = median_ratio_interval(_draws(1), _draws(2, scale=1.3))
    assert iv.ratio == pytest.approx(1.3, rel=0.03)
    assert iv.low > 1.2 and regressed(iv, 1.10)


def test_a_point_estimate_over_the_limit_is_not_enough_to_fail():
    """Few noisy rounds whose medians differ by 12%: the plain ratio would fail at 1.10, the interval does not."""
    old = np.array([1.00, 0.80, 1.25])
    new = np.array([1.12, 0.85, 1.40])
    iv = median_ratio_interval(old, new)
    assert iv.ratio == pytest.approx(1.12) and iv.low < 1.10 and not regressed(iv, 1.10)


def test_pooling_divides_each_point_by_its_baseline_median():
    old, new = pooled([([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]), ([10.0, 10.0], [13.0, 13.0])])
    assert list(old) == [0.5, 1.0, 1.5, 1.0, 1.0] and list(new) == [1.0, 2.0, 3.0, 1.3, 1.3]
    iv = gate_interval([([1.0, 1.01, 0.99], [1.3, 1.31, 1.29]), ([5.0, 5.1, 4.9], [6.5, 6.6, 6.4])])
    assert iv.ratio == pytest.approx(1.3, rel=0.01) and iv.n_old == iv.n_new == 6


def test_bad_samples_are_refused():
    with pytest.raises(ValueError):
        median_ratio_interval([], [1.0])
    with pytest.raises(ValueError):
        median_ratio_interval([0.0, 1.0], [1.0, 1.0])
