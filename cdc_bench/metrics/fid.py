"""FID and KID per (dataset, codec, options, rate point): reconstructions against originals, from feature arrays.

Split as clean-fid does: a worker extracts the features of each reconstruction (and of its original) as the item
is measured (:func:`item_features`) and hands them back; the parent keeps them in the results store; at the end
of a sweep the dataset-level numbers are computed from the stored arrays (:func:`dataset_values`, called by
:mod:`cdc_bench.sweep.dataset_metrics`), so adding a rate point or re-plotting never recomputes features. Nothing here
reads or writes files.

Protocols (stored beside every value, with the patch count and the Inception file that produced the features):

* ``fid256`` (default): HiFiC's FID/256, every 256 x 256 patch of :mod:`.patches` counts as one image;
* ``clean``: whole images, resized to 299 x 299 by clean-fid's resizer.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from . import MetricInfo, get_metric
from .frechet import fid_from_features, kernel_distance
from .inception import INCEPTION_WEIGHT, load_inception
from .patches import extract_patches

PROTOCOLS = ("fid256", "clean")
DATASET_METRICS = ("fid", "kid")

#: Inception's feature dimension: with fewer patches the covariance is singular and FID is biased upward
MIN_FID_PATCHES = 2048
_CLEANFID = (("cleanfid", "pip install clean-fid"),)
FID = MetricInfo("fid", "fid", lower_better=True, label="FID", compute=None, weights=(INCEPTION_WEIGHT.name,),
                 dataset_level=True, precision=2, range=(0.0, None), packages=_CLEANFID, min_samples=MIN_FID_PATCHES)
KID = MetricInfo("kid", "kid", lower_better=True, label="KID", compute=None, weights=(INCEPTION_WEIGHT.name,),
                 dataset_level=True, precision=5, packages=_CLEANFID)


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


@dataclass(frozen=True)
class ItemFeatures:
    """What a worker hands back for the dataset-level metrics of one item."""

    protocol: str
    extractor: str
    features: np.ndarray          # the reconstruction's, N x 2048 float32
    original: np.ndarray | None   # the original's (same protocol and extractor); None: the store has them
    original_sha1: str            # of the original's pixels: ties the pair together


def image_digest(image: np.ndarray) -> str:
    digest = hashlib.sha1(repr(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


_ORIGINALS: "OrderedDict[tuple[str, str, str], tuple[str, np.ndarray]]" = OrderedDict()
#: originals' features a worker keeps (Kodak: 64 KB an image, DIV2K about 0.5 MB): enough for a whole dataset,
#: so a ``--batch`` sweep (one rate point over many images, then the next) or a second codec never re-extracts them
ORIGINALS_KEPT_BYTES = 256 * 2**20


def item_features(original: np.ndarray, recon: np.ndarray, protocol: str = "fid256",
                  device: str = "cpu", stored_original: str | None = None) -> ItemFeatures:
    """The features of one reconstruction and of its original under ``protocol``.

    The original's features are computed once per image and protocol: when the results store already holds
    them from this very extractor (``stored_original`` is that extractor's label), they are not extracted again
    and ``original`` is None; otherwise a worker keeps them (up to :data:`ORIGINALS_KEPT_BYTES`) for the image's
    other rate points. When both are needed, the two sets of patches go through Inception in one call.
    """
    if original.shape != recon.shape:
        raise ValueError(f"reconstruction {recon.shape} and original {original.shape} differ in size")
    extractor = load_inception(device)
    digest = image_digest(original)
    if stored_original is not None and stored_original == extractor.name:
        return ItemFeatures(protocol, extractor.name, extractor.features(protocol_images(recon, protocol)), None,
                            digest)
    key = (digest, protocol, f"{device}:{extractor.name}:{extractor.path}")
    if key in _ORIGINALS:
        _ORIGINALS.move_to_end(key)
        features = extractor.features(protocol_images(recon, protocol))
    else:
        recon_images = protocol_images(recon, protocol)
        both = extractor.features(list(recon_images) + list(protocol_images(original, protocol)))
        features = both[:len(recon_images)]
        _ORIGINALS[key] = (extractor.name, both[len(recon_images):])
        while len(_ORIGINALS) > 1 and sum(f.nbytes for _, f in _ORIGINALS.values()) > ORIGINALS_KEPT_BYTES:
            _ORIGINALS.popitem(last=False)
    return ItemFeatures(protocol, extractor.name, features, _ORIGINALS[key][1], digest)


def dataset_values(original: np.ndarray, recon: np.ndarray, metric: str) -> tuple[float, float | None]:
    """``(value, std)`` of FID (std None) or KID from two stacked feature arrays."""
    if metric == "fid":
        return fid_from_features(original, recon), None
    if metric == "kid":
        return kernel_distance(original, recon)
    raise ValueError(f"{metric!r} is not a dataset-level metric; choose one of {', '.join(DATASET_METRICS)}")
