"""Exporting a results store: CSV and JSON rows, and CompressAI's result-JSON format.

CompressAI's format (``{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], ...}}``, one file
per codec, dataset means sorted by rate) lets our curves and CompressAI's published ones plot together.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd

from .store import ResultsStore
from .summary import dataset_means, short_options

# our column -> CompressAI's key
COMPRESSAI_KEYS = {"bpp": "bpp", "psnr": "psnr-rgb", "ms_ssim": "ms-ssim", "encode_s": "encoding_time",
                   "decode_s": "decoding_time", "lpips": "lpips", "bpp_estimated": "bpp-estimated"}


def export_rows(store: ResultsStore, path: Path, fmt: str) -> Path:
    frame = store.frame()
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        payload = {"runs": store.runs(), "results": json.loads(frame.to_json(orient="records")),
                   "dataset_metrics": json.loads(store.dataset_metrics_frame().to_json(orient="records"))}
        path.write_text(json.dumps(payload, indent=1))
    return path


def compressai_results(frame: pd.DataFrame) -> list[tuple[str, str, dict]]:
    """``(dataset, file stem, result JSON)`` per (dataset, codec, options) group of the dataset means."""
    means = dataset_means(frame)
    if "bpp" not in means:  # no row succeeded
        return []
    means = means.dropna(subset=["bpp"])
    out = []
    for (dataset, codec, options, preprocess, device), group in means.groupby(
            ["dataset", "codec", "options", "preprocess", "device"], sort=True):
        group = group.sort_values("bpp")
        results = {key: [float(v) for v in group[col]] for col, key in COMPRESSAI_KEYS.items()
                   if col in group and group[col].notna().all()}
        rates = pd.to_numeric(group["quality"], errors="coerce")  # CompressAI lists numbers; names stay text
        results["quality"] = [q if pd.isna(r) else (int(r) if float(r).is_integer() and "." not in q else float(r))
                              for q, r in zip(group["quality"], rates)]
        label = short_options(options)
        protocol = options if (preprocess, device) == ("none", "cpu") else f"{options}\x1f{preprocess}\x1f{device}"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", codec) + "-" + hashlib.sha1(protocol.encode()).hexdigest()[:8]
        out.append((dataset, stem, {"name": codec, "description": f"cdc-bench: {codec} ({label}) on {dataset}, "
                                    f"mean over {int(group['n_images'].min())} images", "options": json.loads(options),
                                    "preprocess": preprocess, "device": device,
                                    "results": results}))
    return out


def export_compressai(store: ResultsStore, folder: Path) -> list[Path]:
    paths = []
    for dataset, stem, payload in compressai_results(store.frame()):
        path = folder / re.sub(r"[^A-Za-z0-9._+-]+", "_", dataset) / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))
        paths.append(path)
    return paths
