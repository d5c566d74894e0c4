"""Dataset-level metrics (FID, KID) of a results store: the glue between the stored features and ``metrics.fid``.

A group is one (dataset, codec, options, quality, preprocess, device); it counts when every row of it has status
ok and stored features under the protocol. A group whose features are unchanged since its stored value is not
recomputed (the stored row is returned).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np

from ..provenance import timestamp
from ..metrics.fid import DATASET_METRICS, dataset_values
from ..store.key import GROUP, ResultKey
from ..store.results import ResultsStore



def compute_dataset_metrics(store: ResultsStore, metrics: list[str], protocol: str = "fid256") -> list[dict]:
    """FID/KID of every complete group in ``store``; new values are also stored."""
    wanted = [m for m in metrics if m in DATASET_METRICS]
    if not wanted:
        return []
    df = store.frame()
    if df.empty:
        return []
    previous = _previous_rows(store)
    out: list[dict] = []
    for values, group in df.groupby(list(GROUP), sort=True):
        ident = dict(zip(GROUP, values))
        if (group["status"] != "ok").any():
            continue
        loaded = load_group_features(store, ident, group["image"].tolist(), protocol)
        if loaded is None:
            continue
        recon, orig, extractor, fingerprint = loaded
        base = dict(ident, protocol=protocol, n_images=len(group), n_patches=len(recon),
                    feature_extractor=extractor, features_sha1=fingerprint)
        for metric in wanted:
            row = previous.get(tuple(ident[k] for k in GROUP) + (metric, protocol))
            if row is None or row.get("features_sha1") != fingerprint:
                value, std = dataset_values(orig, recon, metric)
                row = dict(base, metric=metric, value=value, std=std,
                           computed_at=timestamp())
                store.put_dataset_metric(row)
            out.append(row)
    return out


def load_group_features(store: ResultsStore, ident: dict[str, Any], images: list[str], protocol: str
                        ) -> tuple[np.ndarray, np.ndarray, str, str] | None:
    """``(recon features, original features, extractor, fingerprint)`` of one group's images, stacked; None (with a
    warning where it is not just "not measured yet") when the group cannot give a value."""
    label = f"{ident['dataset']} {ident['codec']} q={ident['quality']}"
    loaded = [store.load_features(ResultKey.from_row(dict(ident, image=image)).values(), protocol) for image in images]
    if not loaded or any(item is None for item in loaded):
        return None
    if any(item["original_sha1"] != item["stored_original_sha1"] for item in loaded):
        warnings.warn(f"{label}: stored original features belong to a different original; rerun these items")
        return None
    extractors = {item[k] for item in loaded for k in ("extractor", "original_extractor")}
    if len(extractors) != 1:
        warnings.warn(f"{label}: features come from different Inception files ({', '.join(sorted(extractors))})")
        return None
    recon = np.concatenate([item["features"] for item in loaded])
    orig = np.concatenate([item["original"] for item in loaded])
    if len(recon) < 2:
        warnings.warn(f"{label}: {len(recon)} {protocol} feature vectors; FID/KID need at least 2 "
                      "(images under 256 px give no FID/256 patch)")
        return None
    fingerprint = hashlib.sha1("".join(item["blob_sha1"] for item in loaded).encode()).hexdigest()
    return recon, orig, next(iter(extractors)), fingerprint


def _previous_rows(store: ResultsStore) -> dict[tuple, dict[str, Any]]:
    df = store.dataset_metrics_frame()
    if df.empty or "features_sha1" not in df:
        return {}
    rows = df.drop(columns=["rate"], errors="ignore").astype(object).where(df.notna(), None).to_dict("records")
    return {tuple(r[k] for k in GROUP) + (r["metric"], r["protocol"]): r for r in rows}
