"""What the plot/table/compare/report commands share: opening results, choosing metrics and references."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from .frames import MetricSpec, metric_spec
from .published import PublishedCurve, resolve_reference


class InputError(ValueError):
    """Results or arguments that cannot be used; the message says what to do."""


@dataclass
class Results:
    out_dir: Path
    frame: pd.DataFrame
    dataset_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs: list[dict] = field(default_factory=list)


def load_results(path: str | Path) -> Results:
    """A results folder (or its ``results.sqlite``), or a bare ``results.csv``."""
    from ..store import DB_NAME, ResultsStore

    path = Path(path)
    if path.is_file() and path.suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise InputError(f"{path}: cannot read results CSV ({err})") from None
        return Results(path.parent, frame)
    if path.is_file() and path.name == DB_NAME:
        path = path.parent
    if not (path / DB_NAME).is_file():
        raise InputError(f"no results in {path} (expected {path / DB_NAME}); run `cdc-bench run --out {path}` first, "
                         "or pass a results.csv")
    with ResultsStore(path, create=False) as store:
        return Results(path, store.frame(), store.dataset_metrics_frame(), store.runs())


def parse_metrics(text: str | None, results: Results) -> list[MetricSpec]:
    """``psnr,ms-ssim,lpips`` -> specs; by default every registered metric that has values in the results."""
    from ..metrics import metric_names

    if text:
        return [metric_spec(name.strip()) for name in text.split(",") if name.strip()]
    specs = []
    stored = set(results.dataset_metrics["metric"].str.lower()) if "metric" in results.dataset_metrics else set()
    for name in metric_names():
        spec = metric_spec(name)
        has_values = spec.column in results.frame and results.frame[spec.column].notna().any()
        if has_values or (spec.dataset_level and spec.name.lower() in stored):
            specs.append(spec)
    if not specs:
        raise InputError("no metric values in the results; pass --metrics")
    return specs


def published_for(specs: Sequence[str], datasets: Sequence[str],
                  references_dir: str | Path | None) -> dict[str, list[PublishedCurve]]:
    """Resolve each ``--reference`` for each dataset in the results."""
    out: dict[str, list[PublishedCurve]] = {}
    for dataset in datasets:
        curves: list[PublishedCurve] = []
        for spec in specs:
            curves += resolve_reference(spec, str(dataset), references_dir)
        out[str(dataset)] = curves
    return out


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]
