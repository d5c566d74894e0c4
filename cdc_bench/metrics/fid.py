"""FID and KID per (dataset, codec, options, rate point): reconstructions against originals.

Split as clean-fid does: features are extracted once per image and cached on disk (the runner calls
:func:`record_item_features` for each item as it is measured), and the dataset-level numbers are computed from
the cached features at the end of a sweep (:func:`compute_dataset_metrics`), so adding a rate point or
re-plotting never recomputes features.

Protocols (stored beside every value, with the patch count and the Inception file that produced the features):

* ``fid256`` (default): HiFiC's FID/256, every 256 x 256 patch of :mod:`.patches` counts as one image;
* ``clean``: whole images, resized to 299 x 299 by clean-fid's resizer.

Cache layout under ``OUT/features/<protocol>/``: ``<item_key>.npy`` (+ ``.json``) for each reconstruction and
``originals/<dataset>/<image>.npy`` (+ ``.json``) for each original; the ``.json`` is written last and marks the
pair complete. Files are written atomically, so parallel workers may race on the same original harmlessly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import MetricInfo, get_metric
from .frechet import fid_from_features, kernel_distance
from .inception import INCEPTION_WEIGHT, load_inception
from .patches import extract_patches

PROTOCOLS = ("fid256", "clean")
DATASET_METRICS = ("fid", "kid")

FID = MetricInfo("fid", "fid", lower_better=True, label="FID", compute=None, weights=(INCEPTION_WEIGHT.name,),
                 dataset_level=True, precision=2, range=(0.0, None))
KID = MetricInfo("kid", "kid", lower_better=True, label="KID", compute=None, weights=(INCEPTION_WEIGHT.name,),
                 dataset_level=True, precision=5)


def required_weights(metric_names: Iterable[str]) -> list[str]:
    """Names (in :mod:`cdc_bench.weights`) of the weight files the given metrics need, for ``ensure_all``."""
    return sorted({w for name in metric_names for w in get_metric(name).weights})


def protocol_images(image: np.ndarray, protocol: str) -> np.ndarray | list[np.ndarray]:
    """The images a protocol feeds to Inception for one picture: its patches, or the picture itself."""
    if protocol == "fid256":
        return extract_patches(image)
    if protocol == "clean":
        return [image]
    raise ValueError(f"unknown FID protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def features_dir(out_dir: Path, protocol: str) -> Path:
    return Path(out_dir) / "features" / protocol


def original_features_path(out_dir: Path, dataset: str, image: str, protocol: str) -> Path:
    return features_dir(out_dir, protocol) / "originals" / _safe(dataset) / f"{_safe(image)}.npy"


def record_item_features(out_dir: Path, dataset: str, image: str, item_key: str, original: np.ndarray,
                         recon: np.ndarray, protocol: str = "fid256", device: str = "cpu") -> int:
    """Extract and cache the features of one reconstruction (and of its original, once). Returns the count."""
    if original.shape != recon.shape:
        raise ValueError(f"{dataset}/{image}: reconstruction {recon.shape} and original {original.shape} differ")
    extractor = load_inception(device)
    digest = _image_digest(original)
    orig_path = original_features_path(out_dir, dataset, image, protocol)
    orig_meta = _read_meta(orig_path)
    if not (orig_meta and orig_meta.get("image_sha1") == digest and orig_meta.get("extractor") == extractor.name):
        feats = extractor.features(protocol_images(original, protocol))
        _save(orig_path, feats, {"dataset": dataset, "image": image, "protocol": protocol, "n": len(feats),
                                 "extractor": extractor.name, "image_sha1": digest,
                                 "height": original.shape[0], "width": original.shape[1]})
    feats = extractor.features(protocol_images(recon, protocol))
    _save(features_dir(out_dir, protocol) / f"{item_key}.npy", feats,
          {"dataset": dataset, "image": image, "protocol": protocol, "n": len(feats), "extractor": extractor.name,
           "original_sha1": digest})
    return len(feats)


def compute_dataset_metrics(out_dir: Path, store, metrics: list[str], protocol: str = "fid256") -> list[dict]:
    """FID/KID of every complete (dataset, codec, options, quality) group in ``store``; rows are also stored.

    A group counts when all its rows have status ``ok`` and cached features. A group whose features are
    unchanged since its stored value is not recomputed (the stored row is returned).
    """
    from ..store import item_key

    wanted = [m for m in metrics if m in DATASET_METRICS]
    if not wanted:
        return []
    df = store.frame()
    if df.empty:
        return []
    previous = _previous_rows(store)
    out: list[dict] = []
    for (dataset, codec, options, quality), group in df.groupby(["dataset", "codec", "options", "quality"],
                                                                 sort=True):
        if (group["status"] != "ok").any():
            continue
        loaded = _load_group(out_dir, protocol, dataset, codec, options, quality, group["image"].tolist(), item_key)
        if loaded is None:
            continue
        quality_text, recon_feats, orig_feats, extractors, fingerprint = loaded
        if len(extractors) != 1:
            warnings.warn(f"{dataset} {codec} q={quality_text}: features come from different Inception files "
                          f"({', '.join(sorted(extractors))}); delete {features_dir(out_dir, protocol)} and rerun")
            continue
        if len(recon_feats) < 2:
            warnings.warn(f"{dataset} {codec} q={quality_text}: {len(recon_feats)} {protocol} feature vectors; "
                          f"FID/KID need at least 2 (images under 256 px give no FID/256 patch)")
            continue
        base = {"dataset": dataset, "codec": codec, "options": options, "quality": quality_text,
                "protocol": protocol, "n_images": len(group), "n_patches": len(recon_feats),
                "feature_extractor": next(iter(extractors)), "features_sha1": fingerprint}
        for metric in wanted:
            key = (dataset, codec, options, quality_text, metric, protocol)
            row = previous.get(key)
            if row is None or row.get("features_sha1") != fingerprint:
                row = dict(base, metric=metric, computed_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                if metric == "fid":
                    row.update(value=fid_from_features(orig_feats, recon_feats), std=None)
                else:
                    row.update(zip(("value", "std"), kernel_distance(orig_feats, recon_feats)))
                store.put_dataset_metric(row)
            out.append(row)
    return out


def _load_group(out_dir, protocol, dataset, codec, options, quality, images, item_key):
    """Features of one group, or None when any item lacks them (then the group is not complete yet)."""
    root = features_dir(out_dir, protocol)
    quality_text = None
    for candidate in _quality_texts(quality):  # the frame may have turned "5" into 5: find the stored text
        if (root / f"{item_key(dataset, images[0], codec, options, candidate)}.json").exists():
            quality_text = candidate
            break
    if quality_text is None:
        return None
    recon, orig, extractors, digest = [], [], set(), hashlib.sha1()
    for image in images:
        path = root / f"{item_key(dataset, image, codec, options, quality_text)}.npy"
        meta = _read_meta(path)
        orig_path = original_features_path(out_dir, dataset, image, protocol)
        orig_meta = _read_meta(orig_path)
        if meta is None or orig_meta is None:
            return None
        if orig_meta.get("image_sha1") != meta.get("original_sha1"):
            warnings.warn(f"{dataset}/{image} {codec} q={quality_text}: the cached original features belong to a "
                          f"different original (another --preprocess?); rerun this item to refresh them")
            return None
        recon.append(np.load(path))
        orig.append(np.load(orig_path))
        extractors.update((meta["extractor"], orig_meta["extractor"]))
        digest.update(path.read_bytes() + orig_path.read_bytes())
    return quality_text, np.concatenate(recon), np.concatenate(orig), extractors, digest.hexdigest()


def _previous_rows(store) -> dict[tuple, dict[str, Any]]:
    frame = getattr(store, "dataset_metrics_frame", None)
    if frame is None:
        return {}
    df = frame()
    if df.empty or "features_sha1" not in df:
        return {}
    rows = df.astype(object).where(df.notna(), None).to_dict("records")
    return {(r["dataset"], r["codec"], r["options"], text, r["metric"], r["protocol"]): r
            for r in rows for text in _quality_texts(r["quality"])}


def _quality_texts(quality: Any) -> list[str]:
    texts = [str(quality)]
    if isinstance(quality, (float, np.floating)) and float(quality).is_integer():
        texts += [str(int(quality)), repr(float(quality))]
    elif isinstance(quality, (int, np.integer)):
        texts.append(repr(float(quality)))
    return texts


def _image_digest(image: np.ndarray) -> str:
    digest = hashlib.sha1(repr(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def _read_meta(npy_path: Path) -> dict | None:
    meta_path = npy_path.with_suffix(".json")
    if not (meta_path.exists() and npy_path.exists()):
        return None
    try:
        return json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _save(npy_path: Path, features: np.ndarray, meta: dict) -> None:
    """Features then metadata, each atomically (temporary file + rename); the metadata marks completion."""
    npy_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(npy_path, lambda f: np.save(f, features.astype(np.float32)))
    _atomic_write(npy_path.with_suffix(".json"), lambda f: f.write(json.dumps(meta).encode()))


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", part)
