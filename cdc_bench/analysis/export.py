"""Exporting a results store: CSV and JSON rows, FID/KID beside them, and CompressAI's result-JSON format.

CompressAI's format (``{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], ...}}``, one file
per codec, dataset means sorted by rate) lets our curves and CompressAI's published ones plot together; its
keys are CompressAI's own (``psnr-rgb``, ``ms-ssim-rgb``) so ``python -m compressai.utils.plot`` reads them.
Dataset-level metrics (FID, KID) go into ``dataset_metrics.csv`` beside ``results.csv`` and into extra keys of
the CompressAI JSON, which CompressAI's plot ignores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..store.key import GROUP, file_stem, finite_number, inside, options_dict, protocol_hash
from ..store.results import ResultsStore
from .summary import dataset_means, short_options

# our non-metric column -> CompressAI's key (metrics declare theirs: MetricInfo.compressai_key)
COMPRESSAI_COLUMNS = {"bpp": "bpp", "encode_s": "encoding_time", "decode_s": "decoding_time",
                      "bpp_estimated": "bpp-estimated"}
DATASET_METRICS_CSV = "dataset_metrics.csv"
from ..metrics.fid import MIN_FID_PATCHES  # noqa: E402


def compressai_keys(columns) -> dict[str, str]:
    """Our column -> CompressAI's result-JSON key, for the columns these rows have."""
    from .curves import metric_spec

    keys = dict(COMPRESSAI_COLUMNS)
    for column in columns:
        try:
            key = metric_spec(column).compressai_key
        except Exception:  # noqa: BLE001 - a column no metric claims has no CompressAI key
            continue
        if key:
            keys[column] = key
    return keys


def dataset_metrics_table(store: ResultsStore, fid_bootstrap: int = 0, seed: int = 0) -> pd.DataFrame:
    """FID/KID rows with what a reader needs beside the value: protocol, patch count, ``reliable`` (at least
    2048 patches), and an interval: KID's std over subsets, and for FID a percentile bootstrap over patches
    when ``fid_bootstrap`` > 0 (each resample is a full Fréchet distance, so this costs seconds per value)."""
    frame = store.dataset_metrics_frame()
    if frame.empty:
        return frame
    frame = frame.copy()
    frame["reliable"] = frame["n_patches"].fillna(0).astype(int) >= MIN_FID_PATCHES
    frame["value_lo"] = float("nan")
    frame["value_hi"] = float("nan")
    frame["interval"] = ""
    kid = frame["metric"] == "kid"
    if kid.any():
        value, std = (pd.to_numeric(frame.loc[kid, c], errors="coerce") for c in ("value", "std"))
        frame.loc[kid, "value_lo"] = value - std
        frame.loc[kid, "value_hi"] = value + std
        frame.loc[kid, "interval"] = "value ± std over KID subsets"
    frame.loc[frame["metric"] == "fid", "interval"] = "none (FID has no per-image values; export --fid-bootstrap N)"
    if fid_bootstrap > 0:
        _fid_intervals(store, frame, fid_bootstrap, seed)
    return frame


def _fid_intervals(store: ResultsStore, frame: pd.DataFrame, n: int, seed: int) -> None:
    from ..sweep.dataset_metrics import load_group_features
    from .stats import Bootstrap, fid_patch_bootstrap

    rows = store.frame()
    for i, row in frame[frame["metric"] == "fid"].iterrows():
        ident = {k: str(row[k]) for k in GROUP}
        mask = pd.Series(True, index=rows.index)
        for k in GROUP:
            mask &= rows[k].astype(str) == ident[k]
        group = rows[mask]
        loaded = load_group_features(store, ident, group["image"].tolist(), row["protocol"])
        if loaded is None:
            continue
        recon, orig, _, _ = loaded
        lo, hi = fid_patch_bootstrap(orig, recon, Bootstrap(n_resamples=max(n, 10), seed=seed))
        frame.loc[i, ["value_lo", "value_hi"]] = lo, hi
        frame.loc[i, "interval"] = f"95% percentile bootstrap over patches ({max(n, 10)} resamples, seed {seed})"


def write_dataset_metrics_csv(store: ResultsStore, path: str | Path | None = None, fid_bootstrap: int = 0
                              ) -> Path | None:
    """``dataset_metrics.csv`` beside ``results.csv`` (or at ``path``), atomically; None when there are none.

    Meant to be called wherever ``results.csv`` is written, so FID/KID are as easy to find as the rows."""
    table = dataset_metrics_table(store, fid_bootstrap)
    if table.empty:
        return None
    path = Path(path) if path else store.out_dir / DATASET_METRICS_CSV
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def export_rows(store: ResultsStore, path: Path, fmt: str, fid_bootstrap: int = 0) -> list[Path]:
    """``results.csv`` (+ ``dataset_metrics.csv`` beside it) or one ``results.json`` holding both."""
    frame = store.frame()
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(path, index=False)
        extra = write_dataset_metrics_csv(store, path.with_name(DATASET_METRICS_CSV), fid_bootstrap)
        return [path] + ([extra] if extra else [])
    table = dataset_metrics_table(store, fid_bootstrap)
    payload = {"runs": store.runs(), "results": json.loads(frame.to_json(orient="records")),
               "dataset_metrics": json.loads(table.to_json(orient="records")) if len(table) else []}
    path.write_text(json.dumps(payload, indent=1))
    return [path]


def _dataset_keys(table: pd.DataFrame, dataset: str, codec: str, options: str, qualities,
                  preprocess: str = "none", device: str = "cpu") -> dict:
    """Extra CompressAI-JSON keys (``fid``, ``kid``, ``kid-std``, ``fid-protocol``, ...) aligned with bpp."""
    out: dict = {}
    if table.empty:
        return out
    mine = table[(table["dataset"] == dataset) & (table["codec"] == codec) & (table["options"] == options)
                 & (table["preprocess"] == preprocess) & (table["device"] == device)]
    for metric, per in mine.groupby("metric"):
        protocol = per["protocol"].iloc[0]
        per = per[per["protocol"] == protocol].set_index(per["quality"].astype(str))
        if not all(str(q) in per.index for q in qualities):
            continue
        rows = [per.loc[str(q)] for q in qualities]
        out[metric] = [_num(r["value"]) for r in rows]
        out[f"{metric}-protocol"] = protocol
        out[f"{metric}-patches"] = [int(r["n_patches"]) if pd.notna(r["n_patches"]) else None for r in rows]
        if metric == "kid":
            out["kid-std"] = [_num(r["std"]) for r in rows]
        if any(pd.notna(r["value_lo"]) for r in rows) and metric == "fid":
            out["fid-ci"] = [[_num(r["value_lo"]), _num(r["value_hi"])] for r in rows]
    return out


def _num(value) -> float | None:
    value = finite_number(value)
    return None if math.isnan(value) else value


def compressai_results(frame: pd.DataFrame, dataset_metrics: pd.DataFrame | None = None
                       ) -> list[tuple[str, str, dict]]:
    """``(dataset, file stem, result JSON)`` per (dataset, codec, options) group of the dataset means."""
    from .summary import RANDOM_WEIGHTS, is_random_weights

    if "match_met" in frame:   # stored as text; the mean per rate point is 1 when every image met its target
        frame = frame.assign(match_met=pd.to_numeric(frame["match_met"], errors="coerce"))
    means = dataset_means(frame)
    if "bpp" not in means:  # no row succeeded
        return []
    means = means.dropna(subset=["bpp"])
    table = dataset_metrics if dataset_metrics is not None else pd.DataFrame()
    out = []
    for (dataset, codec, options, preprocess, device), group in means.groupby(
            ["dataset", "codec", "options", "preprocess", "device"], sort=True):
        group = group.sort_values("bpp")
        # strict JSON: a lossless point's infinite PSNR is written as null, and the file says so
        results = {key: [_num(v) for v in group[col]] for col, key in compressai_keys(group.columns).items()
                   if col in group and group[col].notna().all()}
        infinite = sorted(key for key, values in results.items() if None in values)
        rates = pd.to_numeric(group["quality"], errors="coerce")  # CompressAI lists numbers; names stay text
        qualities = [q if pd.isna(r) else (int(r) if float(r).is_integer() and "." not in q else float(r))
                     for q, r in zip(group["quality"].astype(str), rates)]
        results["quality"] = qualities
        description = ""
        if "match_met" in group and group["match_met"].notna().any():   # --target-bpp rows: did each meet it?
            met = [bool(v >= 1) if pd.notna(v) else None for v in group["match_met"]]
            results["target-met"] = met
            missed = [str(q) for q, m in zip(group["quality"], met) if m is False]
            if missed:
                description = f"; matched-bitrate target NOT MET at {', '.join(missed)}"
        results.update(_dataset_keys(table, dataset, codec, options, group["quality"].astype(str).tolist(),
                                     preprocess, device))
        label = short_options(options)
        stem = f"{file_stem(codec)}-{protocol_hash(options, preprocess, device)}"
        # CompressAI's plot puts "name" in the legend: a random-weights run must say so there too.
        name = f"{codec} [{RANDOM_WEIGHTS}]" if is_random_weights(options) else codec
        out.append((dataset, stem, {"name": name, "description": f"cdc-bench: {codec} ({label}) on {dataset}, "
                                    f"mean over {int(group['n_images'].min())} images{description}", "options": options_dict(options),
                                    "preprocess": preprocess, "device": device,
                                    "results": results,
                                    **({"notes": [f"{', '.join(infinite)}: null where the point is lossless "
                                                  "(infinite)"]} if infinite else {})}))
    return out


def export_compressai(store: ResultsStore, folder: Path, fid_bootstrap: int = 0) -> list[Path]:
    paths = []
    table = dataset_metrics_table(store, fid_bootstrap)
    for dataset, stem, payload in compressai_results(store.frame(), table):
        path = inside(folder, Path(file_stem(dataset)) / f"{stem}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, allow_nan=False))
        paths.append(path)
    return paths
