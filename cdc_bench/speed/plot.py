"""The speed figure: decode (and encode) time against steps, one colour per image size, with the linear fit.

Kept here until the figures module (``cdc_bench.plots.speed``) lands; then this should move there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_speed(report: Mapping[str, Any], path: str | Path) -> Path:
    """Save the figure to ``path`` (format from the suffix: .pdf, .png, .svg). Error bars are the IQR."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
    rows = report["rows"]
    sizes = sorted({(r["width"], r["height"]) for r in rows}, key=lambda s: s[0] * s[1])
    fits = {(f["width"], f["height"], f["phase"]): f for f in report.get("fits", [])}
    one_point = not report.get("steps_option", True) or all(r.get("steps") is None for r in rows)
    for i, (w, h) in enumerate(sizes):
        color = f"C{i}"
        chosen = sorted((r for r in rows if (r["width"], r["height"]) == (w, h)), key=lambda r: r.get("steps") or 0)
        x = np.array([r.get("steps") or 1 for r in chosen], dtype=float)
        for phase, marker, style in (("decode", "o", "-"), ("encode", "s", ":")):
            med = np.array([r[phase]["median"] for r in chosen])
            err = np.array([[r[phase]["median"] - r[phase]["q1"], r[phase]["q3"] - r[phase]["median"]]
                            for r in chosen]).T
            face = color if phase == "decode" else "none"
            ax.errorbar(x, med, yerr=err, fmt=marker, color=color, mfc=face, capsize=2,
                        label=f"{phase} {w}×{h}")
            fit = fits.get((w, h, phase))
            if fit is not None:
                xs = np.linspace(0, x.max(), 50)
                flag = "" if fit["linear"] is not False else " (not linear)"
                ax.plot(xs, fit["a"] + fit["b"] * xs, style, color=color, lw=1,
                        label=f"fit {phase} {w}×{h}: {fit['a']:.3g} s + {fit['b']:.3g} s/step{flag}")
    env = report.get("env", {})
    title = f"{report['codec']} on {env.get('device', '?')} ({env.get('device_name', '')}, {env.get('threads')} thr)"
    if report.get("random_weights"):
        title += "\nrandom weights (released architecture)"
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("rate point (single)" if one_point else "denoising steps")
    ax.set_ylabel("time per image (s, median; bars: IQR)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
