"""The results store's SQLite layer: tables, value encoding, read-only connections, error hints, and the
migration of stores written before the key held the whole protocol.

Version 0 (cdc-bench before the store kept a version) keyed rows by ``(dataset, image, codec, options, quality)``:
two runs with different ``--preprocess`` or ``--device`` shared rows. Version 1 adds both to the key. Migrating
keeps every row: ``preprocess`` was stored in each row already, and ``device`` comes from the manifest of the run
that wrote the row (``cpu`` where no manifest says otherwise; a row measured on a GPU before version 1 recorded
the device only there). FID values and feature files of version 0 are not carried over (their key lacked the
protocol); the rows' ``fid_patches`` are cleared so that asking for FID again extracts the features anew.
"""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import sqlite3
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import StoreError
from .key import DATASET_METRIC_KEY, FEATURE_KEY, KEY, ORIGINAL_FEATURE_KEY  # noqa: F401 - the tables' keys

SCHEMA_VERSION = 2
BASE_COLUMNS: dict[str, str] = {
    "dataset": "TEXT NOT NULL", "image": "TEXT NOT NULL", "codec": "TEXT NOT NULL", "options": "TEXT NOT NULL",
    "quality": "TEXT NOT NULL", "preprocess": "TEXT NOT NULL", "device": "TEXT NOT NULL", "rate": "REAL",
    "height": "INTEGER", "width": "INTEGER", "bytes": "INTEGER", "bpp": "REAL", "bpp_estimated": "REAL",
    "psnr": "REAL", "ms_ssim": "REAL", "encode_s": "REAL", "decode_s": "REAL", "metrics_s": "REAL",
    "status": "TEXT NOT NULL", "measured": "TEXT", "error": "TEXT", "warnings": "TEXT", "run_id": "TEXT",
    "finished_at": "TEXT",
}
DATASET_METRIC_COLUMNS: dict[str, str] = {
    "dataset": "TEXT NOT NULL", "codec": "TEXT NOT NULL", "options": "TEXT NOT NULL", "quality": "TEXT NOT NULL",
    "preprocess": "TEXT NOT NULL", "device": "TEXT NOT NULL", "metric": "TEXT NOT NULL", "protocol": "TEXT NOT NULL",
    "value": "REAL", "std": "REAL", "n_images": "INTEGER", "n_patches": "INTEGER", "feature_extractor": "TEXT",
    "computed_at": "TEXT",
}


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables that do not exist yet (inside the caller's transaction)."""
    cols = ", ".join(f"{k} {t}" for k, t in BASE_COLUMNS.items())
    dcols = ", ".join(f"{k} {t}" for k, t in DATASET_METRIC_COLUMNS.items())
    conn.execute(f"CREATE TABLE IF NOT EXISTS results ({cols}, PRIMARY KEY ({', '.join(KEY)}))")
    conn.execute(f"CREATE TABLE IF NOT EXISTS dataset_metrics ({dcols}, PRIMARY KEY ({', '.join(DATASET_METRIC_KEY)}))")
    conn.execute("CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started_at TEXT, ended_at TEXT, "
                 "manifest TEXT NOT NULL)")
    fkey = ", ".join(f"{k} TEXT NOT NULL" for k in FEATURE_KEY)
    conn.execute(f"CREATE TABLE IF NOT EXISTS features ({fkey}, extractor TEXT NOT NULL, n INTEGER NOT NULL, "
                 f"original_sha1 TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY ({', '.join(FEATURE_KEY)}))")
    okey = ", ".join(f"{k} TEXT NOT NULL" for k in ORIGINAL_FEATURE_KEY)
    conn.execute(f"CREATE TABLE IF NOT EXISTS original_features ({okey}, extractor TEXT NOT NULL, "
                 f"n INTEGER NOT NULL, image_sha1 TEXT NOT NULL, data BLOB NOT NULL, "
                 f"PRIMARY KEY ({', '.join(ORIGINAL_FEATURE_KEY)}))")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def migrate(conn: sqlite3.Connection, out_dir: Path | None = None) -> None:
    """Bring an older store to the current schema (inside the caller's transaction), once; no-op otherwise."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version >= SCHEMA_VERSION or "results" not in tables:
        return
    if version < 1:
        _migrate_v0(conn, tables)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    _migrate_v1(conn, tables, out_dir)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


#: an integral rate point written with a point: how version 1 stored the integral ratios of a real knob
_INTEGRAL_FLOAT = "quality GLOB '[0-9]*.0' AND NOT quality GLOB '*[^0-9.]*' AND quality NOT LIKE '%.%.%'"


def _migrate_v1(conn: sqlite3.Connection, tables: set[str], out_dir: Path | None) -> None:
    """Version 2 stores a real knob's integral values as integers (a JPEG 2000 ratio ``190``, not ``190.0``):
    rewrite those rate points in every table, and the folders of their saved reconstructions. A row whose
    integer form is taken already (both were stored) keeps its old text, so no row is lost."""
    changed = 0
    for table in ("results", "dataset_metrics", "features"):
        if table in tables:
            before = conn.total_changes
            conn.execute(f"UPDATE OR IGNORE {table} SET quality = substr(quality, 1, length(quality) - 2) "
                         f"WHERE {_INTEGRAL_FLOAT}")
            changed += conn.total_changes - before
    if "results" in tables:
        conn.execute("UPDATE results SET rate = CAST(quality AS REAL) WHERE quality GLOB '[0-9]*' "
                     "AND NOT quality GLOB '*[^0-9.]*'")
    changed += _rename_option(conn, tables, out_dir, ("cdc", "cdc-eps"), '"weights":"released"',
                              '"weights":"pretrained"')
    recon = Path(out_dir) / "recon" if out_dir is not None else None
    if recon is not None and recon.is_dir():
        for folder in recon.glob("*/*/*/*.0"):
            target = folder.with_name(folder.name[:-2])
            if folder.is_dir() and folder.name[:-2].isdigit() and not target.exists():
                folder.rename(target)
    if changed:
        warnings.warn(f"results store upgraded to version {SCHEMA_VERSION}: {changed} keys rewritten (integral "
                      "rate points without '.0', e.g. JPEG 2000's 190.0 -> 190; CDC's weights=released -> "
                      "pretrained); every row kept", stacklevel=3)


def _rename_option(conn: sqlite3.Connection, tables: set[str], out_dir: Path | None, codecs: tuple[str, ...],
                   old: str, new: str) -> int:
    """Rewrite an option's stored text (CDC's ``weights=released`` is ``weights=pretrained`` from version 2 on)
    in every table, and move the reconstruction folders named by the options' hash."""
    from .key import file_stem, protocol_hash

    marks = ", ".join("?" * len(codecs))
    keys = conn.execute(f"SELECT DISTINCT dataset, codec, options, preprocess, device FROM results "
                        f"WHERE codec IN ({marks}) AND instr(options, ?) > 0", (*codecs, old)).fetchall()
    changed = 0
    for table in ("results", "dataset_metrics", "features"):
        if table in tables:
            before = conn.total_changes
            conn.execute(f"UPDATE OR IGNORE {table} SET options = replace(options, ?, ?) "
                         f"WHERE codec IN ({marks}) AND instr(options, ?) > 0", (old, new, *codecs, old))
            changed += conn.total_changes - before
    for dataset, codec, options, preprocess, device in keys if out_dir is not None else ():
        folder = Path(out_dir) / "recon" / file_stem(dataset) / file_stem(codec)
        source = folder / protocol_hash(options, preprocess, device)
        target = folder / protocol_hash(options.replace(old, new), preprocess, device)
        if source.is_dir() and not target.exists():
            source.rename(target)
    return changed


def _migrate_v0(conn: sqlite3.Connection, tables: set[str]) -> None:
    """Version 0 keyed rows without preprocess and device (see the module docstring)."""
    devices = {}
    if "runs" in tables:
        for run_id, manifest in conn.execute("SELECT run_id, manifest FROM runs"):
            try:
                devices[run_id] = str(json.loads(manifest).get("device") or "cpu").split(":")[0]
            except (TypeError, ValueError):
                pass
    old_cols = [r[1] for r in conn.execute("PRAGMA table_info(results)")]
    rows = [dict(zip(old_cols, r)) for r in conn.execute("SELECT * FROM results")]
    conn.execute("ALTER TABLE results RENAME TO results_v0")
    if "dataset_metrics" in tables:
        conn.execute("ALTER TABLE dataset_metrics RENAME TO dataset_metrics_v0")
    create_schema(conn)
    extra = [c for c in old_cols if c not in BASE_COLUMNS]
    for column in extra:
        conn.execute(f"ALTER TABLE results ADD COLUMN {column}")
    names = list(dict.fromkeys(list(BASE_COLUMNS) + extra))
    for row in rows:
        row["preprocess"] = row.get("preprocess") or "none"
        row["device"] = devices.get(row.get("run_id"), "cpu")
        try:
            row["rate"] = float(row["quality"])
        except (TypeError, ValueError):
            row["rate"] = None
        if "fid_patches" in row:
            row["fid_patches"] = None
        conn.execute(f"INSERT OR REPLACE INTO results ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                     [row.get(n) for n in names])
    conn.execute("DROP TABLE results_v0")
    warnings.warn(f"results store upgraded to version {SCHEMA_VERSION}: {len(rows)} rows kept (now keyed by "
                  "preprocess and device too); earlier FID/KID values are kept in dataset_metrics_v0 only and are "
                  "recomputed when asked for", stacklevel=3)


def hint(err: BaseException, path: Path | None = None) -> str:
    text = str(err).lower()
    if path is not None and Path(path).is_dir():
        return f"{path} is a folder, not a results file: move it away, or pass another --out"
    if "full" in text or getattr(err, "errno", None) == 28:
        return "the disk is full: free space and rerun (finished rows are kept)"
    if "readonly" in text or "read-only" in text or "permission" in text or "unable to open" in text:
        return "the folder is not writable: pass another --out, or fix its permissions"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return "the file is corrupt: move it away and rerun into a fresh folder"
    if "locked" in text or "busy" in text:
        return "another process holds the store locked for too long; retry"
    return "check the folder"


def connect_readonly(path: Path) -> sqlite3.Connection:
    """``mode=ro``; where the folder is not writable (a WAL database then cannot get its -shm file), the file is
    opened ``immutable=1``: nobody can be writing to it there either."""
    uri = path.resolve().as_uri()
    writable = os.access(path.parent, os.W_OK)
    conn = sqlite3.connect(f"{uri}?mode=ro" if writable else f"{uri}?immutable=1", uri=True, timeout=60.0)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        conn.close()
        conn = sqlite3.connect(f"{uri}?immutable=1", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def sql_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):  # SQLite has no NaN; +-inf (PSNR of a lossless item) it keeps
        return None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    if hasattr(value, "item"):  # numpy scalars
        return sql_value(value.item())
    return value


def array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def array_from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def feature_array(data: Any, n: Any, where: str, fix: str | Callable[[], str]) -> np.ndarray:
    """A stored feature blob as its N x D float32 array, or :class:`StoreError` naming ``where`` (file, table, row,
    key) and ``fix`` when it is not one: a truncated or overwritten blob would otherwise end an export or a
    rerun's FID in a NumPy traceback, or move a FID without a word (NaN features, a row count the table disagrees with)."""
    try:
        array = array_from_bytes(bytes(data)) if isinstance(data, (bytes, memoryview)) else None
    except (ValueError, EOFError, OSError) as err:   # np.load's ways of saying "not an .npy" or "cut short"
        problem = f"is not a NumPy array ({err})"
    else:
        problem = None if array is not None else f"is {'NULL' if data is None else type(data).__name__}, not bytes"
        if array is not None and (array.ndim != 2 or array.dtype != np.float32):
            problem = f"is a {array.dtype} array of shape {array.shape}, not N x D float32"
        elif array is not None and (not isinstance(n, int) or len(array) != n):
            problem = f"has {len(array)} rows where its n column says {n!r}"
        elif array is not None and not np.isfinite(array).all():
            problem = f"holds {int((~np.isfinite(array)).sum())} NaN or infinite values"
    if problem:
        raise StoreError(f"{where}: the feature data {problem}; the store is damaged: "
                         f"{fix() if callable(fix) else fix}")
    return array


# -- read validation: a damaged store is refused with one line naming the file, the row, the column and the fix --
# The policy (docs/results.md): every reader refuses a damaged value instead of leaving its row out, since a row
# left out would change the means and BD-rates computed from the rest without anyone asking for it.

#: manifest fields the readers use, and the JSON type each must have when present
MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {"settings": dict, "git": dict, "command": list,
                                                       "interrupted": (dict, bool, type(None)),
                                                       "load": (dict, type(None))}
MANIFEST_SETTINGS: dict[str, type | tuple[type, ...]] = {"data_root": (str, type(None)),
                                                         "dataset_sizes": (dict, type(None))}


def is_numeric_type(declared: str) -> bool:
    """SQLite's affinity rule: a declared type holding INT, REAL, FLOA or DOUB makes a numeric column."""
    declared = (declared or "").upper()
    return any(part in declared for part in ("INT", "REAL", "FLOA", "DOUB"))


#: key columns a store of version 0, read without migrating, may leave NULL: they read as ``none`` and ``cpu``
PROTOCOL_COLUMNS = ("preprocess", "device")
#: the columns without which a results table is none cdc-bench wrote (the key of version 0, and the status)
REQUIRED_COLUMNS = tuple(k for k in KEY if k not in PROTOCOL_COLUMNS) + ("status",)


def check_table(conn: sqlite3.Connection, table: str, key: tuple[str, ...], path: Path,
                required: tuple[str, ...] = ()) -> None:
    """Refuse a table holding what no reader can use: a ``required`` column missing, a key column (or
    ``status``) that is NULL or not text, text or bytes in a numeric column, ``options`` that are not a JSON
    object. Raises :class:`StoreError`."""
    declared = {r[1]: r[2] for r in conn.execute(f"PRAGMA table_info({table})")}
    missing = [c for c in required if c not in declared]
    if missing:
        what = f"has no table {table}" if not declared else f"table {table} has no column {', '.join(missing)}"
        raise StoreError(f"{path}: {what}: this is not a results store cdc-bench wrote; move it away and rerun "
                         "into a fresh folder")
    key = tuple(k for k in key if k in declared)   # a version-0 store has no device column
    for column in (c for c in (*key, "status") if c in declared):
        allowed = "('text', 'null')" if column in PROTOCOL_COLUMNS else "('text')"
        _refuse_where(conn, table, key, path, column, f"typeof({column}) NOT IN {allowed}", "is {value}, not text")
    for column in (c for c, kind in declared.items() if is_numeric_type(kind)):
        _refuse_where(conn, table, key, path, column, f"typeof({column}) NOT IN ('integer', 'real', 'null')",
                      "is {value}, not a number")
    if "options" in declared:
        bad = [rowid for rowid, text in conn.execute(f"SELECT rowid, options FROM {table}")
               if not _json_object(text)]
        if bad:
            _refuse_where(conn, table, key, path, "options", f"rowid IN ({', '.join(map(str, bad))})",
                          "is {value}, not a JSON object of options")


def _refuse_where(conn: sqlite3.Connection, table: str, key: tuple[str, ...], path: Path, column: str,
                  condition: str, what: str) -> None:
    found = conn.execute(f"SELECT rowid, {column}, {', '.join(key)} FROM {table} WHERE {condition} "
                         f"ORDER BY rowid").fetchall()
    if not found:
        return
    rowid, value, *key_values = found[0]
    shown = "NULL" if value is None else repr(value if len(str(value)) <= 60 else f"{str(value)[:57]}...")
    row = ", ".join("NULL" if v is None else str(v).replace("\n", "\\n") for v in key_values)   # one line
    more = f" ({len(found)} rows like it)" if len(found) > 1 else ""
    raise StoreError(
        f"{path}: table {table}, row {rowid} ({row}): {column} {what.format(value=shown)}{more}; the store is "
        f"damaged: delete {'these rows' if more else 'the row'} and rerun the sweep to measure "
        f"{'them' if more else 'it'} again: sqlite3 {shlex.quote(str(path))} "
        f"\"DELETE FROM {table} WHERE {condition}\"")


def _json_object(text: Any) -> bool:
    try:
        return isinstance(text, str) and isinstance(json.loads(text), dict)
    except ValueError:
        return False


def read_manifests(conn: sqlite3.Connection, path: Path) -> list[dict[str, Any]]:
    """Every run's manifest, oldest first; a manifest that is not a JSON object, or whose fields the readers use
    have the wrong type, is refused with one line naming the run and the fix (:class:`StoreError`)."""
    manifests = []
    for rowid, run_id, text in conn.execute("SELECT rowid, run_id, manifest FROM runs ORDER BY started_at, rowid"):
        problem = _manifest_problem(text)
        if problem:
            raise StoreError(
                f"{path}: table runs, row {rowid} (run {run_id!r}): the manifest {problem}; the store is damaged: "
                f"delete the manifest (the run's rows stay; only its record of settings and versions goes): "
                f"sqlite3 {shlex.quote(str(path))} \"DELETE FROM runs WHERE rowid = {rowid}\"")
        manifests.append(json.loads(text))
    return manifests


def _manifest_problem(text: Any) -> str | None:
    if not isinstance(text, str):
        return f"is {'NULL' if text is None else type(text).__name__}, not JSON text"
    try:
        manifest = json.loads(text)
    except ValueError as err:
        return f"is not JSON ({err})"
    if not isinstance(manifest, dict):
        return f"is a JSON {_json_kind(manifest)}, not an object"
    for fields, where, prefix in ((MANIFEST_FIELDS, manifest, ""),
                                  (MANIFEST_SETTINGS, manifest.get("settings") or {}, "settings.")):
        for name, kinds in fields.items():
            if name in where and not isinstance(where[name], kinds):
                wanted = " or ".join(_json_kind(k()) for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
                return f"field {prefix}{name} is a JSON {_json_kind(where[name])}, not {wanted}"
    load = manifest.get("load") or {}
    for name in ("peak_1min", "cores"):   # trace captions state the sweep's load
        value = load.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return f"field load.{name} is a JSON {_json_kind(value)}, not a number"
    sizes = (manifest.get("settings") or {}).get("dataset_sizes") or {}
    for name, size in sizes.items():   # titles say "4 of 24 images"
        if not isinstance(size, int) or isinstance(size, bool):
            return f"field settings.dataset_sizes.{name} is a JSON {_json_kind(size)}, not a whole number"
    return None


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
