"""The identity of a result row, spelled out once: its key columns, their groups, their text forms, its file names.

A row is keyed by everything that changes its numbers (:data:`KEY`). The same key without the image is a
dataset-level group (:data:`GROUP`: one mean, one FID); without the rate point too it is a curve (:data:`CURVE`).
Every module that stores, groups, names or files a result goes through this module, so that no second spelling of
the key can drift from the first (the "protocol not in the key" bug lived in such a copy).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from ..download import file_stem, inside  # noqa: F401 - the one sanitiser, re-exported with the key
from ..errors import ConfigError, StoreError

#: the columns that identify a result row
KEY = ("dataset", "image", "codec", "options", "quality", "preprocess", "device")
#: the key without the image: what a dataset mean or a dataset-level metric (FID, KID) is computed over
GROUP = tuple(k for k in KEY if k != "image")
#: the group without the rate point: one rate-quality curve
CURVE = tuple(k for k in GROUP if k != "quality")
#: the key of a dataset-level metric value
DATASET_METRIC_KEY = GROUP + ("metric", "protocol")
#: stored FID features of a reconstruction, and of an original
FEATURE_KEY = KEY + ("protocol",)
ORIGINAL_FEATURE_KEY = ("dataset", "image", "preprocess", "device", "protocol")


def finite_number(value: Any) -> float:
    """``value`` as a float, or NaN when it is no finite number (text, None, inf): the one parse of a number that
    may be missing (store cells, rate points, table values)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def quality_text(rate: Any) -> str:
    """The stored form of a rate point: ``5``, ``0.0032``, ``190`` or a checkpoint name. Never NaN or infinite.

    An integral float keeps its point (``5.0`` stays ``"5.0"``, apart from the integer ``5``); a codec whose knob
    is integral declares it so (:class:`cdc_bench.codecs.Rate`) and hands over an int.
    """
    if isinstance(rate, float) and not math.isfinite(rate):
        raise ConfigError(f"rate point {rate!r} is not a finite number")
    if isinstance(rate, float) and rate.is_integer() and not isinstance(rate, bool):
        return repr(rate)
    text = str(rate)
    if text.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity", ""):
        raise ConfigError(f"rate point {rate!r} is not valid")
    return text


def rate_number(quality: Any) -> float:
    """The numeric form of a stored rate point, for plotting (NaN for named points)."""
    return finite_number(quality)


def device_kind(device: str | None) -> str:
    """The part of a device name that can change a number: ``cuda:1`` and ``cuda`` compute alike."""
    return (device or "cpu").split(":")[0]


def options_dict(options: Any) -> dict:
    """The options of a row as a dict: the one reader of the stored options JSON.

    A dict passes through; empty or missing text is ``{}``. Text that is not a JSON object (a damaged store or CSV)
    is a :class:`StoreError`: a legend or an export built from it would name a curve that was never run. The
    store's readers refuse such a row first, naming its file and row (:func:`cdc_bench.store.schema.check_table`).
    """
    if isinstance(options, Mapping):
        return dict(options)
    if options is None or (isinstance(options, float) and math.isnan(options)) or \
            (isinstance(options, str) and not options.strip()):
        return {}
    try:
        value = json.loads(options) if isinstance(options, str) else None
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise StoreError(f"options {options!r} of a result row are not a JSON object; the results are damaged: "
                         "delete the row and rerun the sweep to measure it again")
    return value


def protocol_hash(options: str, preprocess: str, device: str) -> str:
    """8 hex digits naming (options, preprocess, device): the part of a curve's identity too long for a file name.

    The default protocol (no preprocessing, CPU) hashes the options alone, so the names of older folders hold.
    """
    text = options if (preprocess, device_kind(device)) == ("none", "cpu") else \
        "\x1f".join((options, preprocess, device_kind(device)))
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _given(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool) and value == value and value != ""


@dataclass(frozen=True)
class ResultKey:
    """The identity of one result row: the store key, with its canonical text forms."""

    dataset: str
    image: str
    codec: str
    options: str
    quality: str
    preprocess: str
    device: str

    @classmethod
    def of(cls, dataset: str, image: str, codec: str, options: str, rate: Any, preprocess: str,
           device: str) -> "ResultKey":
        """The key of a measurement: the rate point and the device in their stored forms."""
        return cls(str(dataset), str(image), str(codec), str(options), quality_text(rate), str(preprocess),
                   device_kind(device))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "ResultKey":
        """The key of a row (a dict or a DataFrame row). Raises :class:`ConfigError` for a missing column.

        The one place where a row without ``preprocess``/``device`` (a hand-made row, or one from before the key
        held the protocol) gets the protocol the store migration gives it: no preprocessing, CPU.
        """
        values = {k: row.get(k) for k in KEY}
        values["preprocess"] = values["preprocess"] if _given(values["preprocess"]) else "none"
        values["device"] = values["device"] if _given(values["device"]) else "cpu"
        missing = [k for k, v in values.items() if not _given(v)]
        if missing:
            raise ConfigError(f"result row without {', '.join(missing)}")
        return cls.of(*(values[k] for k in KEY))

    def values(self) -> tuple[str, ...]:
        """The key columns' values, in :data:`KEY` order."""
        return astuple(self)

    def asdict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def group(self) -> tuple[str, ...]:
        """The dataset-level group (:data:`GROUP`) this row belongs to."""
        return tuple(getattr(self, k) for k in GROUP)

    def curve(self) -> tuple[str, ...]:
        """The curve (:data:`CURVE`) this row lies on."""
        return tuple(getattr(self, k) for k in CURVE)

    def recon_path(self, out_dir: str | Path, suffix: str = ".png") -> Path:
        """Where ``--save-recon`` keeps this row's reconstruction (and ``--save-bitstreams`` its bytes)."""
        return (Path(out_dir) / "recon" / file_stem(self.dataset) / file_stem(self.codec)
                / protocol_hash(self.options, self.preprocess, self.device) / file_stem(self.quality)
                / f"{file_stem(self.image)}{suffix}")

    def bitstream_path(self, out_dir: str | Path) -> Path:
        """Where ``--save-bitstreams`` keeps the exact bytes the codec produced: beside the reconstruction, ``.bin``.
        Checked to stay inside ``out_dir``."""
        return inside(out_dir, self.recon_path(".", suffix=".bin"))


assert tuple(f.name for f in fields(ResultKey)) == KEY  # the dataclass spells the key in KEY's order
