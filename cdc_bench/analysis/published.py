"""Published rate-quality curves: CompressAI result JSONs, HiFiC's data.csv, MS-ILLM's results.csv, your own.

A reference is named on the command line as ``compressai:bpg_444_x265_ycbcr``, ``hific``, ``msillm``, ``nogan``,
``stablecodec`` or a path to a file. Names resolve inside a references folder laid out like the published
repositories (``compressai/<dataset>/<name>.json``, ``hific/data.csv``, ``neuralcompression_illm/results.csv``,
``stablecodec/results.csv``). By default that is the copy shipped in this package
(``cdc_bench/analysis/data/published``: Kodak results only, plus StableCodec's three sets; see SOURCE.md there for
provenance); point ``--references-dir`` at a full copy for other datasets.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError

DEFAULT_REFERENCES_DIR = Path(__file__).resolve().parent / "data" / "published"

# Column names used by published files -> the results column of the same metric.
_COLUMNS = {
    "psnr-rgb": "psnr", "psnr": "psnr", "ms-ssim-rgb": "ms_ssim", "ms-ssim": "ms_ssim", "ms_ssim": "ms_ssim",
    "lpips": "lpips", "fid": "fid", "kid": "kid", "dists": "dists", "niqe": "niqe", "fid_swav": "fid_swav",
    "bpp": "bpp",
}
# MS-SSIM given in dB (-10 log10(1 - MS-SSIM)), as several papers quote it; converted back on reading.
_DB_COLUMNS = {"ms-ssim-db-rgb": "ms_ssim", "ms-ssim-db": "ms_ssim"}
# Named curves in NeuralCompression's results.csv: CLI name -> model column value.
_ILLM_MODELS = {"msillm": "MS-ILLM", "nogan": "No-GAN"}


class PublishedReferenceError(ConfigError, ValueError):
    """A reference name or file that cannot be read; the message says what to do."""


@dataclass
class PublishedCurve:
    """One published curve: bpp and whatever metrics the source reports, one row per rate point."""

    label: str          # legend text, without the "(published)" suffix
    style_key: str      # codec name whose colour and marker the curve borrows
    points: pd.DataFrame
    source: str
    dataset: str | None = None
    notes: list[str] = field(default_factory=list)
    published: bool = True   # False for your own file: labelled by its file name, never "(published)"

    @property
    def legend(self) -> str:
        return f"{self.label} (published)" if self.published else self.label


def normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename published column names to results columns (``psnr-rgb`` -> ``psnr``); MS-SSIM dB -> linear."""
    out = {}
    for col in frame.columns:
        key = str(col).strip().lower()
        if key in _DB_COLUMNS:
            out[_DB_COLUMNS[key]] = 1.0 - 10.0 ** (-pd.to_numeric(frame[col], errors="coerce") / 10.0)
        elif key in _COLUMNS:
            out.setdefault(_COLUMNS[key], pd.to_numeric(frame[col], errors="coerce"))
        else:
            out.setdefault(key.replace("-", "_"), frame[col])
    result = pd.DataFrame(out)
    if "bpp" not in result:
        raise PublishedReferenceError("no bpp column")
    return result.sort_values("bpp").reset_index(drop=True)


def read_compressai_json(path: str | Path, dataset: str | None = None) -> PublishedCurve:
    """A CompressAI result file: ``{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...]}}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        results = data["results"]
        lengths = {k: len(v) for k, v in results.items() if isinstance(v, list)}
        n = lengths.get("bpp")
        frame = pd.DataFrame({k: v for k, v in results.items() if isinstance(v, list) and len(v) == n})
        points = normalise_columns(frame)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, PublishedReferenceError) as err:
        raise PublishedReferenceError(f"{path}: not a CompressAI result JSON ({err}); expected "
                             '{"name": ..., "results": {"bpp": [...], "psnr-rgb": [...]}}') from None
    name = str(data.get("name") or path.stem)
    return PublishedCurve(name, name, points, str(path), dataset)


def read_hific_csv(path: str | Path, dataset: str) -> PublishedCurve:
    """HiFiC's ``data.csv`` (tensorflow/compression models/hific): the lo/mi/hi points of one dataset."""
    frame = _read_csv(path)
    return PublishedCurve("HiFiC", "hific", _rows_of(frame, path, dataset), str(path), dataset)


def read_illm_csv(path: str | Path, dataset: str, model: str = "MS-ILLM") -> PublishedCurve:
    """NeuralCompression's ``projects/illm/results.csv``: one model (MS-ILLM or No-GAN) on one dataset."""
    frame = _read_csv(path)
    if "model" not in frame:
        raise PublishedReferenceError(f"{path}: no 'model' column; is this NeuralCompression's illm/results.csv?")
    models = sorted(frame["model"].unique())
    if model not in models:
        raise PublishedReferenceError(f"{path}: no model {model!r}; it has {', '.join(models)}")
    rows = frame[frame["model"] == model].drop(columns="model")
    return PublishedCurve(model, model, _rows_of(rows, path, dataset), str(path), dataset)


def read_user_file(path: str | Path, dataset: str | None = None) -> list[PublishedCurve]:
    """Your own curve(s): a CompressAI-style JSON, or a CSV with a ``bpp`` column and metric columns.

    A CSV may hold several curves told apart by a ``name`` (or ``codec``/``model``/``label``) column, and rows of
    several datasets told apart by a ``dataset`` column.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        curve = read_compressai_json(path, dataset)
        curve.label, curve.published = f"{curve.label} ({path.name})", False
        return [curve]
    frame = _read_csv(path)
    name_col = next((c for c in ("name", "label", "codec", "model") if c in frame), None)
    groups = frame.groupby(name_col, sort=False) if name_col else [(path.stem, frame)]
    curves = []
    for name, rows in groups:
        rows = rows.drop(columns=[name_col]) if name_col else rows
        if "dataset" in rows and dataset is not None:
            rows = _rows_of(rows, path, dataset)
        else:
            rows = normalise_columns(rows.drop(columns=[c for c in ("dataset",) if c in rows]))
        # A local file is labelled by its own name: it is whatever the user put in it, not a published result.
        label = f"{name} ({path.name})" if name_col else path.name
        curves.append(PublishedCurve(label, str(name), rows, str(path), dataset, published=False))
    return curves


def resolve_reference(spec: str, dataset: str | None,
                      references_dir: str | Path | None = None) -> list[PublishedCurve]:
    """Turn a ``--reference`` value into curves; see the module docstring for the forms accepted."""
    root = Path(references_dir) if references_dir else DEFAULT_REFERENCES_DIR
    as_path = Path(spec).expanduser()
    if as_path.suffix.lower() in (".json", ".csv") and as_path.is_file():
        return read_user_file(as_path, dataset)
    source, _, name = spec.partition(":")
    source = source.strip().lower()
    if source == "compressai":
        if not name:
            raise PublishedReferenceError(f"--reference {spec!r}: name a result file, e.g. compressai:bpg_444_x265_ycbcr; "
                                 f"available: {', '.join(_compressai_names(root, dataset)) or '(none)'}")
        rel = Path(name) if "/" in name else Path(dataset or "kodak") / name
        path = root / "compressai" / rel.with_suffix(".json")
        if not path.is_file():
            known = _compressai_names(root, dataset)
            close = [n for n in known if n.startswith(name)][:3] or difflib.get_close_matches(name, known, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else f" Available: {', '.join(known) or '(none)'}."
            raise PublishedReferenceError(f"--reference {spec!r}: no file {path}.{hint} Use --references-dir to point at a "
                                 "copy of CompressAI's results/image folder for other datasets.")
        return [read_compressai_json(path, dataset)]
    if dataset is None:
        raise PublishedReferenceError(f"--reference {spec!r}: which dataset? These files hold several; the results say none")
    if source == "hific":
        return [read_hific_csv(_need(root / "hific" / "data.csv", spec), dataset)]
    if source in _ILLM_MODELS:
        path = _need(root / "neuralcompression_illm" / "results.csv", spec)
        return [read_illm_csv(path, dataset, _ILLM_MODELS[source])]
    if source == "stablecodec":
        path = _need(root / "stablecodec" / "results.csv", spec)
        curve = PublishedCurve("StableCodec", "stablecodec", _rows_of(_read_csv(path), path, dataset), str(path),
                               dataset)
        if dataset.lower() == "kodak":
            curve.notes.append("Kodak FID from 192 FID/256 patches: unreliable (fewer samples than features)")
        return [curve]
    if as_path.suffix:
        raise PublishedReferenceError(f"--reference {spec!r}: file not found")
    raise PublishedReferenceError(f"--reference {spec!r}: unknown; use compressai:<name>, hific, msillm, nogan, stablecodec "
                         "or a path to a .json/.csv file")


def reference_names(references_dir: str | Path | None = None, dataset: str | None = "kodak") -> list[str]:
    """Every name ``--reference`` accepts in the given folder (for help texts and error messages)."""
    root = Path(references_dir) if references_dir else DEFAULT_REFERENCES_DIR
    names = [f"compressai:{n}" for n in _compressai_names(root, dataset)]
    if (root / "hific" / "data.csv").is_file():
        names.append("hific")
    if (root / "neuralcompression_illm" / "results.csv").is_file():
        names += list(_ILLM_MODELS)
    if (root / "stablecodec" / "results.csv").is_file():
        names.append("stablecodec")
    return names


def _compressai_names(root: Path, dataset: str | None) -> list[str]:
    folder = root / "compressai" / (dataset or "kodak")
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def _need(path: Path, spec: str) -> Path:
    if not path.is_file():
        raise PublishedReferenceError(f"--reference {spec!r}: {path} not found; pass --references-dir with the published "
                             "files (layout: hific/data.csv, neuralcompression_illm/results.csv)")
    return path


def _read_csv(path: str | Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise PublishedReferenceError(f"{path}: cannot read CSV ({err})") from None
    # HiFiC's file starts with an unnamed index column.
    return frame.loc[:, [c for c in frame.columns if not str(c).startswith("Unnamed")]]


def _rows_of(frame: pd.DataFrame, path: str | Path, dataset: str) -> pd.DataFrame:
    if "dataset" not in frame:
        raise PublishedReferenceError(f"{path}: no 'dataset' column")
    rows = frame[frame["dataset"].astype(str).str.lower() == dataset.lower()]
    if rows.empty:
        raise PublishedReferenceError(f"{path}: no rows for dataset {dataset!r}; it has "
                             f"{', '.join(sorted(frame['dataset'].astype(str).unique()))}")
    points = normalise_columns(rows.drop(columns="dataset"))
    # Blank cells (HiFiC reports no FID on Kodak) become NaN and are simply not drawn.
    return points.replace([np.inf, -np.inf], np.nan)
