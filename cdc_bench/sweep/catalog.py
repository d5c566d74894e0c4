"""Every weight file of every codec and metric: what `cdc-bench weights` lists.

Codec and metric modules declare their weight files (:func:`cdc_bench.weights.register_weight`) when imported, so
the full list needs them imported; this module does that, above the registries, so that :mod:`cdc_bench.weights`
(which codecs and metrics use) never reaches up to them.
"""

from __future__ import annotations

import logging

from ..codecs.registry import CODECS
from ..metrics import METRICS
from ..weights import WeightFile, registered_weights

log = logging.getLogger(__name__)


def load_declarations() -> None:
    """Import every registered codec and metric, whose modules declare their weight files on import."""
    for registry in (CODECS, METRICS):
        for entry in registry.entries().values():
            try:
                entry.load()
            except Exception as err:  # noqa: BLE001 - a codec that cannot load declares nothing; `codecs` says why
                log.debug("cannot load %s to list its weight files: %s", entry.source, err)


def all_weights() -> list[WeightFile]:
    load_declarations()
    return registered_weights()


def weights_for(name: str) -> list[WeightFile]:
    """The weight files of a codec or metric (``cdc``, ``compressai:mbt2018``, ``lpips``), by their ``used_by``."""
    return [w for w in all_weights() if name in w.used_by]
