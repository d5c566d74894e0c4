"""The results store: one SQLite file per output folder, crash-safe, resumable, and the only writer of results.

SQLite in WAL mode (standard library) gives atomic row writes, so a killed run never leaves a half-written row,
and several runs can write into one store at once. Each result is one row keyed by everything that changes its
numbers: ``(dataset, image, codec, options, quality, preprocess, device)`` (:data:`KEY`). The metric set is *not*
in the key: metric columns are added on first use, and a rerun that asks for a new metric fills in that column
(:mod:`cdc_bench.sweep.client` decides what is missing). FID features live in the store too (keyed like the rows, plus
the FID protocol), and so do ``--save-recon`` reconstructions (PNG files under ``recon/`` with injective names) and
``--save-bitstreams`` bytes (``.bin`` beside them).
Workers never write here: they return rows and artefacts, and the parent process stores them.

``quality`` is the rate point as text, everywhere (``"5"`` stays ``"5"``); ``rate`` is its numeric form for
plotting (NaN for named rate points). Readers open the store read-only (``ResultsStore(out, create=False)``),
which also works on a read-only folder. Every failure of the store is a :class:`StoreError` naming the path.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..provenance import timestamp
from ..errors import ConfigError, StoreError
from .key import (DATASET_METRIC_KEY, FEATURE_KEY, KEY, ORIGINAL_FEATURE_KEY, ResultKey,  # noqa: F401
                  quality_text, rate_number)
from .schema import (REQUIRED_COLUMNS, SCHEMA_VERSION, array_bytes, array_from_bytes, check_table, connect_readonly,
                     create_schema, feature_array, hint, migrate, read_manifests, sql_value)

DB_NAME = "results.sqlite"
CSV_NAME = "results.csv"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: ``measured`` lists the metrics a row was measured with (a value may be NULL: undefined, e.g. MS-SSIM of a
#: tiny image); a merge adds to the list instead of replacing it
_MERGE = {"measured": "measured = CASE WHEN results.measured IS NULL OR results.status != 'ok' THEN excluded.measured "
                      "ELSE results.measured || ',' || excluded.measured END"}


def recon_path(out_dir: str | Path, dataset: str, codec: str, options: str, quality: str, image: str, *,
               preprocess: str = "none", device: str = "cpu") -> Path:
    """Where ``--save-recon`` keeps the reconstruction of one item (one file per result key)."""
    return ResultKey.of(dataset, image, codec, options, quality, preprocess, device).recon_path(out_dir)


def recon_path_for(out_dir: str | Path, row: Mapping[str, Any]) -> Path:
    """:func:`recon_path` of a result row (a dict or a DataFrame row)."""
    return ResultKey.from_row(row).recon_path(out_dir)


def _retry_locked(operation, wait_s: float = 60.0):
    """Retry an operation SQLite refuses with "database is locked" without calling its busy handler.

    Switching a new database to WAL needs an exclusive lock, and SQLite answers a second process doing the same
    at that moment with SQLITE_BUSY at once instead of waiting; two runs starting into one folder hit it.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return operation()
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class ResultsStore:
    """Rows of results under ``out_dir``. Safe to open from several processes at once.

    ``create=False`` opens an existing store read-only (readers: table, plot, export); nothing is written, not even
    on a folder the user may not write to.
    """

    def __init__(self, out_dir: str | Path, create: bool = True):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / DB_NAME
        self.readonly = not create
        if self.readonly and not self.path.is_file():
            raise StoreError(f"no results in {self.out_dir} (expected {self.path}); "
                             f"run `cdc-bench run --out {self.out_dir}` first")
        try:
            if self.readonly:
                self._conn = connect_readonly(self.path)
                self._check_version()
            else:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
                _retry_locked(lambda: self._conn.execute("PRAGMA journal_mode=WAL"))
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._check_version()
                with self._write():
                    migrate(self._conn, self.out_dir)
                    create_schema(self._conn)
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"{self.path}: cannot open the results store ({err}); {hint(err, self.path)}") from None

    def _check_version(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer cdc-bench (store version {version}, this one "
                             f"reads up to {SCHEMA_VERSION}); upgrade cdc-bench")

    def _columns(self, table: str) -> list[str]:
        return [row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")]

    def _ensure_columns(self, table: str, row: Mapping[str, Any]) -> None:
        existing = set(self._columns(table))
        for name, value in row.items():
            if name in existing:
                continue
            if not _IDENT.match(name):
                raise ValueError(f"invalid column name {name!r}")
            kind = "REAL" if isinstance(value, (int, float)) and not isinstance(value, bool) else "TEXT"
            try:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as err:  # another process added it first
                if "duplicate column" not in str(err):
                    raise

    class _Tx:
        def __init__(self, store: "ResultsStore"):
            self.store = store

        def __enter__(self):
            if self.store.readonly:
                raise StoreError(f"{self.store.path}: opened read-only")
            conn = self.store._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                # Ctrl-C can land just after SQLite began the transaction, before the with-block: end it here,
                # or the next write (the run's interrupted manifest) finds a transaction already open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        def __exit__(self, exc_type, exc, _tb):
            conn = self.store._conn
            try:
                conn.execute("ROLLBACK" if exc_type else "COMMIT")
            except sqlite3.Error as err:
                if exc_type is None:
                    raise StoreError(f"{self.store.path}: cannot write ({err}); "
                                     f"{_write_hint(err, self.store.out_dir)}") from None
            if exc_type is not None and issubclass(exc_type, (sqlite3.Error, OSError)):
                raise StoreError(f"{self.store.path}: cannot write ({exc}); "
                                 f"{_write_hint(exc, self.store.out_dir)}") from None

    def _write(self) -> "_Tx":
        return self._Tx(self)

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot read ({err}); {hint(err)}") from None

    # -- rows -----------------------------------------------------------------------------------------------
    def put_row(self, row: Mapping[str, Any]) -> None:
        """Write one result row (atomic); see :meth:`put_rows`."""
        self.put_rows([row])

    def put_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Write result rows. A row with status ok is merged into an existing row of its key (columns it does not
        carry, such as a metric measured by an earlier run, are kept); any other row replaces it whole."""
        rows = [dict(r) for r in rows]
        if not rows:
            return
        with self._write():
            for row in rows:
                missing = [k for k in KEY + ("status",) if k not in ("preprocess", "device")
                           and row.get(k) in (None, "")]
                if missing:
                    raise ValueError(f"result row lacks {missing}: {row}")
                row.update(ResultKey.from_row(row).asdict())
                _check_options(row["options"])
                row["rate"] = _numeric(row["quality"])
                row = {k: sql_value(v) for k, v in row.items()}
                self._ensure_columns("results", row)
                names = list(row)
                marks = ", ".join("?" * len(names))
                if row["status"] == "ok":
                    updates = ", ".join(_MERGE.get(n, f"{n} = excluded.{n}") for n in names if n not in KEY)
                    sql = (f"INSERT INTO results ({', '.join(names)}) VALUES ({marks}) "
                           f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {updates}")
                else:
                    sql = f"INSERT OR REPLACE INTO results ({', '.join(names)}) VALUES ({marks})"
                self._conn.execute(sql, [row[n] for n in names])

    def rows_by_key(self, columns: Iterable[str] = ()) -> dict[tuple[str, ...], dict[str, Any]]:
        """``{key: {"status": ..., column: value}}`` of every row; absent columns read as None. A damaged row is a
        :class:`StoreError` as in :meth:`frame`: a sweep planned on it would take a damaged value for a measured one."""
        try:
            check_table(self._conn, "results", KEY, self.path, REQUIRED_COLUMNS)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot read ({err}); {hint(err)}") from None
        existing = set(self._columns("results"))
        cols = [c for c in dict.fromkeys(columns) if c in existing]
        select = ", ".join(KEY + ("status",) + tuple(cols))
        out = {}
        for values in self._read(f"SELECT {select} FROM results"):
            key, rest = tuple(values[:len(KEY)]), values[len(KEY):]
            out[key] = dict(zip(("status", *cols), rest))
        return out

    def finished_keys(self, statuses: tuple[str, ...] = ("ok", "error", "timeout")) -> set[tuple[str, ...]]:
        """Keys of the rows with one of ``statuses``."""
        return {k for k, v in self.rows_by_key().items() if v["status"] in statuses}

    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame: ``quality`` as text (the key), ``rate`` its numeric form. A damaged row (text
        in a numeric column, a NULL key, options that are not JSON) is a :class:`StoreError` naming it."""
        try:
            check_table(self._conn, "results", KEY, self.path, REQUIRED_COLUMNS)
            df = pd.read_sql_query("SELECT * FROM results ORDER BY dataset, codec, options, image", self._conn)
        except (sqlite3.Error, pd.errors.DatabaseError) as err:
            raise StoreError(f"{self.path}: cannot read ({err}); {hint(err)}") from None
        return _with_text_quality(df)

    def check(self) -> None:
        """Refuse a damaged store at once, as each reader would (:meth:`frame`, :meth:`dataset_metrics_frame`,
        :meth:`runs`): for a command that reads only part of it, such as ``export --format csv``."""
        self.frame()
        self.dataset_metrics_frame()
        self.runs()

    # -- artefacts: reconstructions and FID features --------------------------------------------------------
    def recon_file(self, row: Mapping[str, Any]) -> Path:
        return recon_path_for(self.out_dir, row)

    def put_recon(self, row: Mapping[str, Any], png: bytes) -> Path:
        """Keep one reconstruction (PNG bytes from a worker), written atomically."""
        path = self.recon_file(row)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(png)
            tmp.replace(path)
        except OSError as err:
            tmp.unlink(missing_ok=True)  # a partial file would hold the space the run's manifest still needs
            raise StoreError(f"{path}: cannot write the reconstruction ({err}); "
                             f"{_write_hint(err, self.out_dir)}") from None
        return path

    def get_recon(self, row: Mapping[str, Any]) -> bytes | None:
        path = self.recon_file(row)
        return path.read_bytes() if path.is_file() else None

    def bitstream_file(self, row: Mapping[str, Any]) -> Path:
        """Where ``--save-bitstreams`` keeps a row's bytes (:meth:`ResultKey.bitstream_path`)."""
        return ResultKey.from_row(row).bitstream_path(self.out_dir)

    def put_bitstream(self, row: Mapping[str, Any], data: bytes) -> Path:
        """Keep the exact bytes a codec produced for one row (the ones whose length is its bpp), atomically."""
        path = self.bitstream_file(row)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as err:
            raise StoreError(f"{path}: cannot write the bitstream ({err}); {hint(err)}") from None
        return path

    def get_bitstream(self, row: Mapping[str, Any]) -> bytes | None:
        """The saved bytes of a row, or None when ``--save-bitstreams`` did not keep them."""
        path = self.bitstream_file(row)
        return path.read_bytes() if path.is_file() else None

    def put_features(self, key: tuple[str, ...], protocol: str, features: np.ndarray, extractor: str,
                     original_sha1: str, original: np.ndarray | None = None) -> None:
        """The FID features of one reconstruction (and of its original, keyed without the codec)."""
        dataset, image, _codec, _options, _quality, preprocess, device = key
        with self._write():
            self._conn.execute(
                f"INSERT OR REPLACE INTO features ({', '.join(FEATURE_KEY)}, extractor, n, original_sha1, data) "
                f"VALUES ({', '.join('?' * (len(FEATURE_KEY) + 4))})",
                (*key, protocol, extractor, len(features), original_sha1, array_bytes(features)))
            if original is not None:
                self._conn.execute(
                    f"INSERT OR REPLACE INTO original_features ({', '.join(ORIGINAL_FEATURE_KEY)}, extractor, n, "
                    f"image_sha1, data) VALUES ({', '.join('?' * (len(ORIGINAL_FEATURE_KEY) + 4))})",
                    (dataset, image, preprocess, device, protocol, extractor, len(original), original_sha1,
                     array_bytes(original)))

    def original_feature_extractors(self) -> dict[tuple[str, ...], str]:
        """``(dataset, image, preprocess, device, protocol)`` -> the extractor label of the stored original features."""
        rows = self._read(f"SELECT {', '.join(ORIGINAL_FEATURE_KEY)}, extractor FROM original_features", ())
        return {tuple(r[:-1]): r[-1] for r in rows}

    def feature_keys(self, protocol: str) -> set[tuple[str, ...]]:
        """Result keys that have FID features for ``protocol``."""
        rows = self._read(f"SELECT {', '.join(KEY)} FROM features WHERE protocol = ?", (protocol,))
        return {tuple(r) for r in rows}

    def load_features(self, key: tuple[str, ...], protocol: str) -> dict[str, Any] | None:
        """``{"features", "original", "extractor", "original_sha1"}`` of one item, or None when incomplete."""
        where = " AND ".join(f"{k} = ?" for k in FEATURE_KEY)
        rec = self._read(f"SELECT rowid, extractor, original_sha1, n, data FROM features WHERE {where}",
                         (*key, protocol))
        if not rec:
            return None
        dataset, image, _c, _o, _q, preprocess, device = key
        owhere = " AND ".join(f"{k} = ?" for k in ORIGINAL_FEATURE_KEY)
        orig = self._read(f"SELECT rowid, extractor, image_sha1, n, data FROM original_features WHERE {owhere}",
                          (dataset, image, preprocess, device, protocol))
        if not orig:
            return None
        (rowid, extractor, sha1, n, data), = rec
        (o_rowid, o_extractor, o_sha1, o_n, o_data), = orig
        db = shlex.quote(str(self.path))
        rerun = "then rerun the sweep with the same -m fid/kid to measure them again"
        features = feature_array(data, n, f"{self.path}: table features, row {rowid} ({', '.join(map(str, key))}, "
                                 f"{protocol})", f'sqlite3 {db} "DELETE FROM features WHERE rowid = {rowid}", {rerun}')

        def original_fix() -> str:   # the image's reconstruction features go too: a rerun measures each pair again
            pairs = [r for r, in self._read(f"SELECT rowid FROM features WHERE {owhere} ORDER BY rowid",
                                             (dataset, image, preprocess, device, protocol))]
            return (f'sqlite3 {db} "DELETE FROM original_features WHERE rowid = {o_rowid}; DELETE FROM features '
                    f'WHERE rowid IN ({", ".join(map(str, pairs))})" (the image\'s reconstruction features too), '
                    f"{rerun}")

        original = feature_array(o_data, o_n, f"{self.path}: table original_features, row {o_rowid} ({dataset}, "
                                 f"{image}, {protocol})", original_fix)
        return {"features": features, "original": original, "extractor": extractor,
                "original_extractor": o_extractor, "original_sha1": sha1, "stored_original_sha1": o_sha1,
                "blob_sha1": hashlib.sha1(bytes(data) + bytes(o_data)).hexdigest()}

    # -- dataset-level metrics ------------------------------------------------------------------------------
    def put_dataset_metric(self, row: Mapping[str, Any]) -> None:
        row = dict(row)
        row.update({k: v for k, v in ResultKey.from_row({**row, "image": "-"}).asdict().items() if k != "image"})
        row = {k: sql_value(v) for k, v in row.items()}
        row.setdefault("computed_at", timestamp())
        with self._write():
            self._ensure_columns("dataset_metrics", row)
            names = list(row)
            self._conn.execute(
                f"INSERT OR REPLACE INTO dataset_metrics ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names])

    def dataset_metrics_frame(self) -> pd.DataFrame:
        """The dataset-level metric values (FID, KID), checked as :meth:`frame` checks the rows."""
        try:
            check_table(self._conn, "dataset_metrics", DATASET_METRIC_KEY, self.path)
            df = pd.read_sql_query("SELECT * FROM dataset_metrics ORDER BY dataset, codec, options, metric",
                                   self._conn)
        except (sqlite3.Error, pd.errors.DatabaseError) as err:
            raise StoreError(f"{self.path}: cannot read ({err}); {hint(err)}") from None
        return _with_text_quality(df)

    # -- runs -----------------------------------------------------------------------------------------------
    def start_run(self, run_id: str, manifest: Mapping[str, Any]) -> None:
        with self._write():
            self._conn.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, NULL, ?)",
                               (run_id, manifest.get("started_at"), json.dumps(manifest, default=str)))

    def end_run(self, run_id: str, manifest: Mapping[str, Any]) -> None:
        with self._write():
            self._conn.execute("UPDATE runs SET ended_at = ?, manifest = ? WHERE run_id = ?",
                               (manifest.get("ended_at"), json.dumps(manifest, default=str), run_id))

    def runs(self) -> list[dict[str, Any]]:
        """Every run's manifest, oldest first; a damaged one is a :class:`StoreError` naming the run."""
        try:
            return read_manifests(self._conn, self.path)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot read ({err}); {hint(err)}") from None

    # -- exports --------------------------------------------------------------------------------------------
    def write_csv(self, path: str | Path | None = None) -> Path:
        """Write all rows to ``results.csv`` (or ``path``) atomically."""
        path = Path(path) if path else self.out_dir / CSV_NAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.frame().to_csv(tmp, index=False)
            tmp.replace(path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"{path}: cannot write the CSV ({err}); {_write_hint(err, path.parent)}") from None
        return path

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def _write_hint(err: BaseException, folder: Path) -> str:
    """What to do about a failed write; a full disk is named (its mount point, the space left) with the folder."""
    full = getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "full" in str(err).lower()
    if not full:
        return hint(err)
    mount = Path(os.path.abspath(folder))
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    try:
        free = f", {shutil.disk_usage(folder).free / 2 ** 20:.1f} MiB free"
    except OSError:
        free = ""
    return (f"the disk holding {folder} is full (mounted at {mount}{free}): free space there or pass another "
            "--out, then rerun the same command to resume (finished rows are kept)")


def _check_options(options: str) -> None:
    """The options key must be strict JSON: no NaN or Infinity (they would make two runs' keys differ or match
    by accident, and other JSON readers reject them)."""
    def reject(token: str):
        raise ConfigError(f"option value {token} is not a finite number (options {options})")

    try:
        json.loads(options, parse_constant=reject)
    except json.JSONDecodeError as err:
        raise ValueError(f"the options key is not JSON ({err}): {options!r}") from None


def _numeric(quality: str) -> float | None:
    value = rate_number(quality)
    return None if math.isnan(value) else value


def _with_text_quality(df: pd.DataFrame) -> pd.DataFrame:
    """Rows as read: ``quality`` as text (the key), ``rate`` as stored (its numeric form, NaN for names)."""
    if "quality" in df:
        df["quality"] = df["quality"].astype(str)
    if "rate" in df:
        df["rate"] = pd.to_numeric(df["rate"], errors="coerce")
    elif "quality" in df:
        df["rate"] = [rate_number(q) for q in df["quality"]]
    return df
