"""cdc-bench: an evaluation harness for perceptual image codecs, built around CDC (Yang & Mandt, 2023).

From Python, one call runs a benchmark and another opens a finished one::

    import cdc_bench
    results = cdc_bench.run(datasets=["kodak"], codecs=["jpeg", "webp"], out="results/kodak",
                            options={"jpeg": {"qualities": "10,50,90"}})
    results.means()                 # dataset means per rate point, with bootstrap intervals
    results.bd_table(anchor="webp") # BD-rate / BD-metric of every curve against the anchor
    cdc_bench.load("results/kodak").rows   # every stored row as a pandas frame
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .analysis.inputs import Results


def run(datasets: Any = ("default",), codecs: Any = ("jpeg", "webp", "hevc"), **kwargs: Any) -> "Results":
    """Run a benchmark (:func:`cdc_bench.sweep.api.run`, same arguments) and return its results folder loaded.

    The rows are keyed exactly as ``cdc-bench run`` keys them, so the CLI and Python share one store.
    """
    from .sweep import api

    outcome = api.run(datasets, codecs, **kwargs)
    results = load(outcome.out)
    results.outcome = outcome
    return results


def load(*folders: str | Path) -> "Results":
    """The results of one or more finished (or interrupted) runs, read-only."""
    from .analysis.inputs import load_many

    return load_many(folders)


__all__ = ["__version__", "run", "load"]
