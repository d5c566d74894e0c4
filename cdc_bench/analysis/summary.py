"""Dataset means per rate point, as CompressAI reports them: the arithmetic mean over images of each number."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pandas as pd

from ..errors import StoreError
from ..store.key import GROUP as KEY_GROUP, KEY, options_dict
from ..store.schema import BASE_COLUMNS, is_numeric_type

if TYPE_CHECKING:
    from .stats import Bootstrap

GROUP = list(KEY_GROUP)
#: rows loaded from several folders keep their folder here when it tells two curves apart (analysis.inputs)
SOURCE = "results"
NOT_AVERAGED = {"height", "width", "fid_patches", "rate"}


@functools.lru_cache(maxsize=1)
def _metric_columns() -> frozenset[str]:
    """The columns registered metrics store their values in (found once: it walks the metric registry)."""
    from ..metrics import METRICS

    columns = set()
    for name in METRICS.names():
        try:
            columns.add(METRICS.get(name).column)
        except ImportError:  # an optional metric whose dependency is missing claims no column
            continue
    return frozenset(columns)


_FIX = "the results are damaged: delete the row and rerun the sweep to measure it again"


def numeric_frame(frame: pd.DataFrame, source: str = "results", row: str = "row", fix: str = _FIX) -> pd.DataFrame:
    """``frame`` with every column that must hold numbers (the store's numeric columns, each metric's column) as
    numbers. Text in one (a damaged CSV or frame) is a :class:`StoreError` naming ``source``, the row and the
    column: one policy with the store's readers (refuse, never leave the row out of a mean)."""
    converted = {}
    for column in frame.columns:
        values = frame[column]
        if column in KEY or pd.api.types.is_numeric_dtype(values):
            continue
        declared = BASE_COLUMNS.get(column)
        if not (is_numeric_type(declared) if declared else column in _metric_columns()):
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & numbers.isna()
        if bad.any():
            at = int(bad.to_numpy().argmax())   # the first damaged row, by position (an index may repeat)
            key = ", ".join(str(frame[k].iloc[at]) for k in KEY if k in frame)
            more = f" ({int(bad.sum())} rows like it)" if bad.sum() > 1 else ""
            raise StoreError(f"{source}: {row} {frame.index[at]} ({key}): {column} is {values.iloc[at]!r}, not a "
                             f"number{more}; {fix}")
        converted[column] = numbers
    return frame.assign(**converted) if converted else frame


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric per-image columns to average (bpp, metrics, times), in a stable order."""
    first = ["bpp", "bpp_estimated", "psnr", "ms_ssim"]
    numeric = [c for c in frame.columns if c not in GROUP and c != SOURCE and c not in NOT_AVERAGED
               and pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()]
    return [c for c in first if c in numeric] + sorted(c for c in numeric if c not in first)


def dataset_means(frame: pd.DataFrame, columns: list[str] | None = None, boot: "Bootstrap | None" = None,
                  ) -> pd.DataFrame:
    """One row per (dataset, codec, options, quality) over the rows with status ok, with ``n_images``.

    The one dataset-mean function of cdc-bench (tables, figures, exports and the terminal summary all call it):
    the arithmetic mean over images, as CompressAI reports it. ``columns`` limits the averaged columns (default:
    every numeric per-image column). With ``boot``, each column also gets ``<column>_lo``/``<column>_hi``: a
    bootstrap interval of the mean over images (:mod:`cdc_bench.analysis.stats`). A group that lost images to errors is
    still averaged over the images it has; ``n_failed`` says so.
    """
    frame = numeric_frame(frame)
    group = group_columns(frame)
    if frame.empty:
        return pd.DataFrame(columns=group + ["n_images", "n_failed"])
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    cols = metric_columns(ok) if columns is None else [c for c in columns if c in ok]
    means = ok.groupby(group, sort=False)[cols].mean().reset_index() if len(ok) else pd.DataFrame(columns=group + cols)
    if boot is not None and len(ok):
        from .stats import mean_ci

        bounds = []
        for key, rows in ok.groupby(group, sort=False):
            row = dict(zip(group, key))
            for col in cols:
                row[f"{col}_lo"], row[f"{col}_hi"] = mean_ci(rows[col].to_numpy(dtype=float), boot)
            bounds.append(row)
        means = means.merge(pd.DataFrame(bounds), on=group, how="left")
    status = frame["status"] if "status" in frame else pd.Series("ok", index=frame.index)
    counts = frame.assign(_ok=status.eq("ok")).groupby(group, sort=False)["_ok"].agg(
        n_images=lambda s: int(s.sum()), n_failed=lambda s: int((~s).sum())).reset_index()
    out = counts.merge(means, on=group, how="left")
    sort = ["dataset", "codec", "options"] + (["bpp"] if "bpp" in out else [])
    return out.sort_values(sort, na_position="last").reset_index(drop=True)


def group_columns(frame: pd.DataFrame) -> list[str]:
    """The dataset-level group of these rows: the key columns they have without the image, plus the source folder
    when present (rows from a store have every key column; a hand-made frame may leave the protocol out)."""
    return [c for c in GROUP if c in frame or c in ("dataset", "codec", "options", "quality")] + \
        ([SOURCE] if SOURCE in frame else [])


def short_options(options: str, defaults: dict | None = None) -> str:
    """A compact label of an options JSON string: ``subsampling=444``."""
    opts = options_dict(options)
    if defaults:
        opts = {k: v for k, v in opts.items() if defaults.get(k) != v}
    return ",".join(f"{k}={v}" for k, v in opts.items())


RANDOM_WEIGHTS = "random weights"


def is_random_weights(options: str | dict | None) -> bool:
    """A run whose model had random weights (``-o cdc.weights=random``): its numbers say nothing of the codec."""
    return str(options_dict(options).get("weights", "")).lower() == "random"


def mean_table(frame: pd.DataFrame):
    """A rich table of the dataset means for the terminal."""
    from rich.markup import escape
    from rich.table import Table

    if "match_met" in frame:   # stored as text: averaged, 1 means every image met its --target-bpp
        frame = frame.assign(match_met=pd.to_numeric(frame["match_met"], errors="coerce"))
    means = dataset_means(frame)
    table = Table(title="dataset means (status ok)")
    cols = [c for c in ("bpp", "bpp_estimated", "psnr", "ms_ssim", "lpips", "encode_s", "decode_s") if c in means]
    for col in ["dataset", "codec", "quality", "n"] + cols:
        table.add_column(col, justify="right" if col not in ("dataset", "codec") else "left")
    for _, row in means.iterrows():
        n = f"{row['n_images']}" + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")
        codec = f"{row['codec']} [{RANDOM_WEIGHTS}]" if is_random_weights(row.get("options")) else str(row["codec"])
        quality = str(row["quality"])
        met = row.get("match_met")
        if met is not None and pd.notna(met) and float(met) < 1:   # a --target-bpp point above its target
            quality += " ✗ target not met"
        table.add_row(escape(str(row["dataset"])), escape(codec), escape(quality), n,
                      *[_fmt(row.get(c)) for c in cols])
    return table


def _fmt(value) -> str:
    if value is None or pd.isna(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}"
