"""Least-squares fit of time against step count: ``time = a + b * steps`` per image size.

``b`` is the cost of one denoising step, ``a`` the fixed cost (entropy decoding, the latent decoder, copies).
A diffusion decoder should be linear in steps; a curve that bends (caching effects, a schedule that does more
work per step as steps grow, memory pressure) is flagged so the per-step figure is not trusted blindly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

#: below this R² the points are called not linear (judged only when time really depends on steps, see below)
R2_MIN = 0.99
#: above this relative residual |t - fit| / fit at any point the points are called not linear
MAX_REL_RESIDUAL = 0.10
#: R² is judged only when the fitted line rises by more than this fraction of the mean time over the steps
#: measured: when time hardly depends on steps, R² measures nothing but timing noise.
MATERIAL_RISE = 0.10


@dataclass(frozen=True)
class LinearFit:
    a: float                  # fixed cost, seconds
    b: float                  # cost per step, seconds
    a_stderr: float | None
    b_stderr: float | None
    r2: float
    max_rel_residual: float
    n: int                    # number of step counts fitted
    linear: bool | None       # None: too few points to judge
    note: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_linear(steps: Sequence[float], times: Sequence[float], r2_min: float = R2_MIN,
               max_rel_residual: float = MAX_REL_RESIDUAL) -> LinearFit | None:
    """Fit ``time = a + b * steps`` by ordinary least squares (scipy's ``linregress``).

    Returns ``None`` when there are fewer than two distinct step counts (nothing to fit). With exactly two the
    line passes through both points, so linearity cannot be judged and ``linear`` is ``None``.
    """
    x = np.asarray(steps, dtype=float)
    y = np.asarray(times, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"steps and times differ in length: {x.size} vs {y.size}")
    if x.size < 2 or np.unique(x).size < 2:
        return None
    res = stats.linregress(x, y)
    a, b = float(res.intercept), float(res.slope)
    predicted = a + b * x
    ss_res = float(np.sum((y - predicted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    scale = np.maximum(np.abs(predicted), np.finfo(float).tiny)
    max_rel = float(np.max(np.abs(y - predicted) / scale))
    n_distinct = int(np.unique(x).size)
    a_se = float(res.intercept_stderr) if n_distinct > 2 else None
    b_se = float(res.stderr) if n_distinct > 2 else None
    if n_distinct == 2:
        return LinearFit(a, b, a_se, b_se, r2, max_rel, int(x.size), None,
                         "two step counts: the line passes through both, linearity not judged")
    rise = abs(b) * float(x.max() - x.min())
    material = rise > MATERIAL_RISE * float(abs(y.mean()))
    problems = []
    if max_rel > max_rel_residual:
        problems.append(f"max relative residual {max_rel:.1%} > {max_rel_residual:.0%}")
    if material and r2 < r2_min:
        problems.append(f"R² {r2:.4f} < {r2_min}")
    if problems:
        return LinearFit(a, b, a_se, b_se, r2, max_rel, int(x.size), False, "NOT LINEAR: " + "; ".join(problems))
    note = "linear" if material else "time hardly depends on steps (R² not judged)"
    return LinearFit(a, b, a_se, b_se, r2, max_rel, int(x.size), True, note)
