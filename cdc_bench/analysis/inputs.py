"""What the plot/table/compare/report commands share: opening results, choosing metrics and references."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..metrics import MetricInfo
from ..errors import ConfigError, StoreError
from .summary import SOURCE
from .curves import metric_spec, source_column
from .published import PublishedCurve, resolve_reference


class InputError(ConfigError, ValueError):
    """Results or arguments that cannot be used; the message says what to do."""


@dataclass
class Results:
    """The results of one or more runs: every row, the dataset-level metrics and the runs' manifests."""

    out_dir: Path
    frame: pd.DataFrame
    dataset_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs: list[dict] = field(default_factory=list)
    #: what :func:`cdc_bench.run` did, when these results come from it
    outcome: Any = None

    @property
    def rows(self) -> pd.DataFrame:
        """Every stored row (one per image, codec configuration, rate point and protocol)."""
        return self.frame

    def means(self, intervals: bool = True, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
        """Dataset means per rate point of the rows with status ok, with bootstrap intervals (``*_lo``/``*_hi``)."""
        from .stats import Bootstrap
        from .summary import dataset_means

        ok = self.frame[self.frame["status"] == "ok"] if "status" in self.frame else self.frame
        return dataset_means(ok, boot=Bootstrap(level=level, seed=seed) if intervals else None)

    def bd_table(self, anchor: str, metrics: Sequence[str] = ("psnr", "ms-ssim")) -> pd.DataFrame:
        """BD-rate and BD-metric of every curve against ``anchor`` (a codec or curve label), per dataset and
        metric, as ``cdc-bench table`` computes them."""
        from .bdrate import bd_table
        from .curves import metric_spec, ok_rows, rd_points

        frame, _ = ok_rows(self.frame)
        specs = [metric_spec(m) for m in metrics]
        points = rd_points(frame, specs, self.dataset_metrics)
        return bd_table(points, anchor, specs, frame=frame)


def load_results(path: str | Path) -> Results:
    """A results folder (or its ``results.sqlite``), or a bare ``results.csv``."""
    from ..store.results import DB_NAME, ResultsStore

    path = Path(path)
    if path.is_file() and path.suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise InputError(f"{path}: cannot read results CSV ({err})") from None
        return Results(path.parent, _checked_csv(frame, path))
    if path.is_file() and path.name == DB_NAME:
        path = path.parent
    if not (path / DB_NAME).is_file():
        raise InputError(f"no results in {path} (expected {path / DB_NAME}); run `cdc-bench run --out {path}` first, "
                         "or pass a results.csv")
    with ResultsStore(path, create=False) as store:
        return Results(path, store.frame(), store.dataset_metrics_frame(), store.runs())


def _checked_csv(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """A results CSV held to what the store's readers hold a store to (numbers are numbers, options are JSON
    objects); its rows are named by their line in the file."""
    from ..store.key import options_dict
    from .summary import numeric_frame

    fix = "the results are damaged: delete the line, or export the CSV again from its results.sqlite"
    frame.index = frame.index + 2   # the header is line 1
    frame = numeric_frame(frame, str(path), "line", fix)
    for line, options in frame.get("options", pd.Series(dtype=object)).items():
        try:
            options_dict(options)
        except StoreError:
            raise StoreError(f"{path}: line {line}: options {options!r} are not a JSON object; {fix}") from None
    return frame.reset_index(drop=True)


def load_many(paths: Sequence[str | Path]) -> Results:
    """Several results folders as one: rows, FID/KID and manifests concatenated.

    A (codec, options) pair found in more than one folder is told apart by a ``results`` column naming its folder
    (a curve column: legends read ``jpeg (results=run-a)``); the options stay as stored. Every row keeps its
    folder in ``_out_dir`` for reconstructions.
    """
    loaded = [load_results(p) for p in paths]
    if not loaded:
        raise InputError("give at least one results folder")
    names = [r.out_dir.name or str(r.out_dir) for r in loaded]
    if len(set(names)) < len(names):
        names = [str(r.out_dir) for r in loaded]
    seen: dict[tuple[str, str], int] = {}
    for r in loaded:
        for pair in set(zip(r.frame.get("codec", []), r.frame.get("options", []))):
            seen[pair] = seen.get(pair, 0) + 1
    frames, dms, runs = [], [], []
    for r, name in zip(loaded, names):
        # _out_dir: where this row's files are.
        frame = r.frame.assign(_out_dir=str(r.out_dir))
        dm = r.dataset_metrics.copy()
        if len(loaded) > 1 and any(n > 1 for n in seen.values()):
            frame[SOURCE] = [name if seen.get((c, o), 0) > 1 else "" for c, o in zip(frame["codec"], frame["options"])]
            if len(dm):
                dm[SOURCE] = [name if seen.get((c, o), 0) > 1 else "" for c, o in zip(dm["codec"], dm["options"])]
        frames.append(frame)
        dms.append(dm)
        runs += r.runs
    dms = [d for d in dms if len(d)]
    return Results(loaded[0].out_dir, pd.concat(frames, ignore_index=True),
                   pd.concat(dms, ignore_index=True) if dms else pd.DataFrame(), runs)


def only_codecs(frame: pd.DataFrame, names: Sequence[str], keep: Sequence[str] = ()) -> pd.DataFrame:
    """The rows of ``names`` (``--codecs``) and of ``keep`` (an anchor); a name with no row is an
    :class:`InputError` listing the codecs there, where it would otherwise drop out without a word."""
    present = sorted(set(frame["codec"].astype(str)))
    missing = [n for n in names if n not in present]
    if missing:
        raise InputError(f"--codecs: {', '.join(missing)} not in the results; codecs there: {', '.join(present)}")
    return frame[frame["codec"].isin(set(names) | set(keep))]


def parse_range(text: str | None, what: str) -> tuple[float, float] | None:
    """``0.1,1.5`` -> (0.1, 1.5); None for no text. Raises InputError naming the option."""
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{what} {text!r}: give two numbers LO,HI, e.g. 0.1,1.5") from None
    if not lo < hi:
        raise InputError(f"{what} {text!r}: LO must be less than HI")
    return lo, hi


def parse_metrics(text: str | None, results: Results, ms_ssim_db: bool = True) -> list[MetricInfo]:
    """``psnr,ms-ssim,lpips`` -> specs; by default every registered metric that has values in the results.

    MS-SSIM is in dB by default everywhere (figures, ``table``, ``report``), so one store gives one BD-rate."""
    from ..metrics import metric_names

    if text:
        return [metric_spec(name.strip(), ms_ssim_db) for name in text.split(",") if name.strip()]
    specs = []
    stored = set(results.dataset_metrics["metric"].str.lower()) if "metric" in results.dataset_metrics else set()
    for name in metric_names():
        spec = metric_spec(name, ms_ssim_db)
        column = source_column(spec)
        has_values = column in results.frame and results.frame[column].notna().any()
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


def run_data_root(runs: list[dict]) -> str | None:
    """The data root the last run used, if it recorded one (where compare and report find the originals)."""
    for manifest in reversed(runs):
        root = (manifest.get("settings") or {}).get("data_root")
        if root:
            return root
    return None
