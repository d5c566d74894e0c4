"""``speed.fit``: the least-squares line time = a + b * steps and its linearity verdict, on known numbers."""

from __future__ import annotations

import numpy as np
import pytest

from cdc_bench.speed import fit_linear


def test_fit_recovers_known_fixed_and_per_step_cost():
    steps = [1, 2, 4, 8, 16, 32, 65]
    fit = fit_linear(steps, [0.3 + 0.05 * s for s in steps])
    assert fit.a == pytest.approx(0.3, abs=1e-9)
    assert fit.b == pytest.approx(0.05, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.linear is True and fit.n == 7
    assert fit.b_stderr == pytest.approx(0.0, abs=1e-9)


def test_fit_tolerates_small_noise():
    steps = np.array([1, 2, 4, 8, 16])
    noise = np.array([0.01, -0.01, 0.005, -0.005, 0.0])  # +-1% of the time
    times = (2.0 + 0.5 * steps) * (1 + noise)
    fit = fit_linear(steps, times)
    assert fit.linear is True
    assert fit.b == pytest.approx(0.5, rel=0.03)
    assert fit.max_rel_residual < 0.02


def test_fit_flags_quadratic_growth():
    steps = [1, 2, 4, 8, 16, 32]
    fit = fit_linear(steps, [0.1 + 0.01 * s * s for s in steps])
    assert fit.linear is False
    assert fit.note.startswith("NOT LINEAR")
    assert fit.max_rel_residual > 0.10


def test_fit_flags_a_single_outlier_by_its_residual():
    steps = [1, 2, 4, 8, 16]
    times = [1 + s for s in steps]
    times[1] *= 1.5  # one point 50% high: R² stays high, the relative residual does not
    fit = fit_linear(steps, times)
    assert fit.linear is False and "residual" in fit.note


def test_fit_does_not_judge_r2_when_time_does_not_depend_on_steps():
    steps = [1, 2, 4, 8, 16]
    times = [1.00, 1.01, 0.99, 1.005, 0.995]  # flat: R² is noise, residuals are tiny
    fit = fit_linear(steps, times)
    assert fit.r2 < 0.99
    assert fit.linear is True and "hardly depends" in fit.note


def test_fit_two_points_is_exact_and_unjudged_one_point_is_none():
    fit = fit_linear([1, 3], [2.0, 4.0])
    assert (fit.a, fit.b, fit.linear) == (pytest.approx(1.0), pytest.approx(1.0), None)
    assert fit_linear([4], [1.0]) is None
    assert fit_linear([4, 4], [1.0, 1.1]) is None
    with pytest.raises(ValueError):
        fit_linear([1, 2], [1.0])
